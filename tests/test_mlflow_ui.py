"""The MLflow UI in a real headless Chromium, and optuna-dashboard, over a real tracked search.

The search (``tracked_search``: grid25, logged to a real ``mlflow server``) is promoted under its own
model name, then Chromium opens the pages a user would and waits for what each must show: the
trials nested under their search, a trial's ``js_modes`` chart and sample grid, the ``champion``
alias. Every page is saved as a PNG under ``test-report/screenshots/`` (``$GANTUNE_TEST_REPORT_DIR``
moves it). Elements are awaited with Playwright's own waits, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import headless_chromium, require_chromium, screenshot_dir
from checks import http_body, wait_for

from pipelines.cli import main
from pipelines.tracking.tags import PARENT_RUN_FILE, TAG_PARENT, TAG_ROLE

MODEL = "grid25-ui"  # its own registered model, so test_promote's version numbers stay its own
ALIAS = "champion"
ML_VIEW = "workflowType=machine_learning"  # the sidebar's "Model training" switch, as a URL parameter
IMAGE_STEP = re.compile(r"^samples\+step\+(\d+)\+")  # MLflow's file names for log_image(key="samples", step=N)


@pytest.fixture(scope="module")
def ui(tracked_search, request):
    """The tracked search promoted under MODEL, its runs as MlflowClient sees them, and a browser."""
    from mlflow import MlflowClient

    require_chromium()
    client = MlflowClient(tracked_search["uri"])
    experiment = client.get_experiment_by_name(tracked_search["experiment"])
    parent_id = json.loads((tracked_search["folder"] / PARENT_RUN_FILE).read_text())["parent_run_id"]
    children = client.search_runs([experiment.experiment_id], f"tags.`{TAG_PARENT}` = '{parent_id}'",
                                  max_results=1000)
    assert children and all(run.data.tags[TAG_ROLE] == "trial" for run in children)
    assert main(["promote", "--experiment", tracked_search["experiment"], "--search", parent_id,
                 "--tracking-uri", tracked_search["uri"], "--model-name", MODEL, "--alias", ALIAS]) == 0
    champion = client.get_model_version_by_alias(MODEL, ALIAS)
    shots = screenshot_dir()
    with headless_chromium() as browser:
        yield {"client": client, "uri": tracked_search["uri"], "experiment": experiment, "parent_id": parent_id,
               "children": children, "champion": champion, "browser": browser, "shots": shots,
               "folder": tracked_search["folder"]}
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even when the tests pass
        print(f"\nMLflow UI screenshots: {shots}", flush=True)


@pytest.fixture
def page(ui, request):
    """A fresh tab, saved as ``<test name>.png`` when the test ends (pass or fail), then closed."""
    tab = ui["browser"].new_page()
    try:
        yield tab
    finally:
        try:
            tab.screenshot(path=str(ui["shots"] / f"{request.node.name}.png"))
        finally:
            tab.close()


def run_link(page, run_id: str):
    return page.locator(f'a[href$="/runs/{run_id}"]')


@pytest.mark.xfail(strict=True, reason=(
    "mlflow 3.17.2 ignores the experiment's mlflow.experimentKind tag: the sidebar's GenAI / Model training "
    "switch decides (URL ?workflowType=, else localStorage 'mlflow.workflowType', else 'genai'), so a fresh "
    "browser opens every experiment on the GenAI overview"))
def test_a_fresh_browser_opens_the_experiment_on_the_model_training_view(ui, page):
    from playwright.sync_api import expect

    assert ui["experiment"].tags.get("mlflow.experimentKind") == "custom_model_development"
    page.goto(f"{ui['uri']}/#/experiments/{ui['experiment'].experiment_id}")
    # The app redirects to the view it picked: .../overview/... (GenAI) or .../runs (model training).
    page.wait_for_url(re.compile(r"#/experiments/\d+/(overview|runs)\b"))
    assert re.search(r"#/experiments/\d+/runs\b", page.url), page.url
    expect(run_link(page, ui["parent_id"])).to_be_visible()


def test_the_experiment_lists_each_trial_under_its_search(ui, page):
    """The runs table shows the search's parent run, collapsed; expanding it shows every trial by name."""
    from playwright.sync_api import expect

    page.goto(f"{ui['uri']}/#/experiments/{ui['experiment'].experiment_id}?{ML_VIEW}")
    parent = run_link(page, ui["parent_id"])
    expect(parent).to_have_text(ui["folder"].name)
    expect(page.get_by_role("link", name="Runs", exact=True).first).to_be_visible()  # not the GenAI "Overview"
    for child in ui["children"]:  # nested: hidden until the parent row is expanded
        expect(run_link(page, child.info.run_id)).to_have_count(0)
    row = page.locator('[role="row"]').filter(has=parent)
    row.locator('button[data-component-id*="runnamecellrenderer"]').click()
    for child in ui["children"]:
        expect(run_link(page, child.info.run_id)).to_have_text(child.info.run_name)  # the Ray trial's name


def test_a_trial_page_charts_js_modes_and_shows_its_samples(ui, page):
    """The longest trial's model-metrics tab draws js_modes and shows the sample grid logged at its last step."""
    from playwright.sync_api import expect

    client = ui["client"]
    # The trial that reported longest, so its chart is a line (ASHA stops some after one report).
    run_id, history = max(((run.info.run_id, client.get_metric_history(run.info.run_id, "js_modes"))
                           for run in ui["children"]), key=lambda pair: len(pair[1]))
    images = [match for item in client.list_artifacts(run_id, "images")
              if (match := IMAGE_STEP.match(Path(item.path).name))]
    assert len(history) >= 2 and images, "the trial logged js_modes and its sample grids (log_image, key samples)"
    last_step = max(int(match.group(1)) for match in images)

    page.goto(f"{ui['uri']}/#/experiments/{ui['experiment'].experiment_id}/runs/{run_id}/model-metrics?{ML_VIEW}")
    # The tab renders only the charts in view (16 metrics and the images): show just these two.
    page.get_by_placeholder("Search metric charts").fill("js_modes|samples")
    cards = page.locator('[data-testid="experiment-view-compare-runs-card"]')
    chart = cards.filter(has=page.locator('h4[title="js_modes"]'))
    line = chart.locator(".js-plotly-plot .scatterlayer path.js-line")
    expect(line.first).to_have_attribute("d", re.compile(r"^M[^L]+L"))  # a line of >= 2 points

    samples = cards.filter(has=page.locator('h4[title="samples"]'))
    slider = samples.get_by_role("slider")
    expect(slider).to_have_attribute("aria-valuemax", str(last_step))
    step_box = samples.locator('input[type="number"]')  # the card opens on step 0, where nothing was logged
    step_box.fill(str(last_step))
    step_box.blur()
    expect(slider).to_have_attribute("aria-valuenow", str(last_step))
    picture = samples.locator("img")
    expect(picture).to_have_attribute("src", re.compile(re.escape(quote(f"samples+step+{last_step}+", safe=""))))
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=picture.element_handle())


def test_the_registered_model_page_shows_the_champion_alias(ui, page):
    from playwright.sync_api import expect

    version = ui["champion"].version
    page.goto(f"{ui['uri']}/#/models/{MODEL}")
    row = page.locator('[role="row"]').filter(has=page.get_by_role("link", name=f"Version {version}", exact=True))
    expect(row.locator(f'[title="{ALIAS}"]')).to_have_text(re.compile(rf"@\s*{ALIAS}"))
    others = page.locator('[role="row"]').filter(has_not=page.get_by_role("link", name=f"Version {version}",
                                                                          exact=True))
    expect(others.locator(f'[title="{ALIAS}"]')).to_have_count(0)  # one version holds the alias


def test_optuna_dashboard_reports_the_study_and_its_trials(ui, spawn_service):
    import optuna

    storage = f"sqlite:///{ui['folder'] / 'optuna.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    assert [summary.study_name for summary in summaries] == [ui["folder"].name]
    trials = len(optuna.load_study(study_name=ui["folder"].name, storage=storage).trials)
    dashboard = str(Path(sys.executable).with_name("optuna-dashboard"))
    port, process, log = spawn_service([dashboard, storage, "--host", "127.0.0.1", "--port", "{port}"],
                                       dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    listed = wait_for(lambda: http_body(f"{base}/api/studies"), "optuna-dashboard's studies", process, 60, log)
    studies = json.loads(listed)["study_summaries"]
    assert [study["study_name"] for study in studies] == [ui["folder"].name]
    detail = json.loads(http_body(f"{base}/api/studies/{studies[0]['study_id']}"))
    assert detail["name"] == ui["folder"].name
    assert len(detail["trials"]) == trials == len(ui["children"])
