"""The report in a real browser: headless Chromium (selenium) renders every figure from its data: URI
and requests nothing from the network."""

import pytest

from sdlab.experiments.report import build_report
from sdlab.testing.browser import find_chromium, headless_chromium, network_requests
from sdlab.testing.synthetic_runs import write_synthetic_runs

pytest.importorskip("selenium")
BINARY, DRIVER = find_chromium()
pytestmark = pytest.mark.skipif(not (BINARY and DRIVER),
                                reason="chromium + chromedriver not installed "
                                       "(apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_runs(root, coverages=(8, 32), seeds=(0, 1), contexts=("none", "demo", "answer"), steps=6,
                         eval_every=3, problems=3)
    return build_report(root, tmp_path_factory.mktemp("report"))


def test_images_render_and_nothing_is_fetched(report_path):
    url = report_path.resolve().as_uri()
    with headless_chromium() as driver:
        driver.get(url)
        assert driver.execute_script("return document.readyState") == "complete"
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.closest('figure') ? i.closest('figure').id : '',"
            " i.complete, i.naturalWidth, i.naturalHeight, i.currentSrc.slice(0, 22)])")
        ids = [i[0] for i in images]
        assert len(images) >= 9 and {"coverage-sweep", "richness-sweep", "curve-reward-mean"} <= set(ids)
        for fig_id, complete, width, height, src in images:
            assert complete and width > 0 and height > 0, fig_id
            assert src == "data:image/png;base64,", fig_id
        # the page is laid out (tables and the side-by-side samples are visible)
        assert driver.execute_script("return document.querySelectorAll('#samples mark').length") > 0
        assert driver.execute_script("return document.getElementById('final-table-grid').offsetHeight") > 0
        # no script ran: the embedded model text is inert
        assert driver.execute_script("return document.scripts.length") == 0
        requests = network_requests(driver)
        console = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert url in requests
    outside = [u for u in requests if u != url and not u.startswith("data:")]
    assert outside == [], outside
    assert console == [], console  # e.g. a Content-Security-Policy violation
