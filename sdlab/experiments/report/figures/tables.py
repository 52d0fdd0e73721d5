"""The report's tables of the runs themselves: the groups, the final numbers of every group and
the runs (their numbers are summary.json's `groups`, `metrics` and `runs`)."""

from __future__ import annotations

from ..figure import Figure
from ..groups import fmt_value, short_keys
from ..page import Section, fmt_num, fmt_stat, table_html


class GroupsTable(Figure):
    key = "groups_table"
    in_summary = False

    def section(self, data, value) -> Section:
        short = short_keys(data.differing)
        rows = [[g.label] + [fmt_value(g.values[k]) for k in data.differing]
                + [len(g.runs), ", ".join(fmt_value(s) for s in g.seeds)] for g in data.groups]
        headers = ["group"] + [short[k] for k in data.differing] + ["runs", "seeds"]
        return Section("groups", "Groups", [table_html(headers, rows, table_id="groups-table")],
                       intro=("Runs are grouped by the config keys that differ between them "
                              f"({', '.join(data.differing) or 'none'}); seeds of one setting form a group. "
                              "Bands and ± are 95% Student-t intervals over seeds."))


class FinalTable(Figure):
    key = "final_table"
    in_summary = False

    def section(self, data, value) -> Section | None:
        if not data.metrics:
            return None
        rows = [[g.label] + [fmt_stat(data.table[g.label][m.id]) for m in data.metrics] for g in data.groups]
        return Section("final-table", "Final numbers", [
            table_html(["group"] + [m.label for m in data.metrics], rows, table_id="final-table-grid")],
            intro="Mean ± half-width of the 95% Student-t interval over seeds (n = number of seeds). "
                  "'final' is each run's last logged value; 'step 0' is the initial model.")


class RunsTable(Figure):
    key = "runs_table"
    in_summary = False

    def section(self, data, value) -> Section:
        label_of = {id(r): g.label for g in data.groups for r in g.runs}
        rows = [[r.name, label_of.get(id(r), ""), fmt_value(r.seed), r.last_step if r.last_step is not None else "–",
                 (r.status or {}).get("state", ""), fmt_num(r.final("reward/mean"))] for r in data.runs]
        return Section("runs", "Runs", [table_html(["run", "group", "seed", "last step", "status", "final reward"],
                                                   rows, table_id="runs-table")])
