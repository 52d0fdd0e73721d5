"""The report's figures and tables, in the page's order. A new figure: a `Figure` subclass (a
`compute` and a `section`, see `..figure`) in a module here, and one entry in `FIGURES`."""

from __future__ import annotations

from ..figure import Figure
from .coverage import Coverage
from .curves import Curves
from .epistemic import EpistemicChange
from .richness import Richness
from .samples import Samples
from .tables import FinalTable, GroupsTable, RunsTable

FIGURES: list[Figure] = [
    GroupsTable(),
    Curves(),
    EpistemicChange(),
    Coverage(),
    Richness(),
    FinalTable(),
    Samples(),
    RunsTable(),
]
