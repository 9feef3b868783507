"""Chapter 01 in a real browser: JupyterLab + headless Chromium, run all cells, move the episode player.

Facts this relies on are in the project's browser-testing notes: JupyterLab 4 served on localhost with
``--LabApp.expose_app_in_browser=True`` (so ``window.jupyterapp`` can run the notebook), Debian's
``/usr/bin/chromium`` driven by the PyPI package ``playwright`` (never ``playwright install``: it downloads a
browser), and ipywidgets' slider DOM (``.widget-slider``, ``.noUi-handle``, ``.widget-readout``).

Everything the server writes (config, runtime, settings, workspaces, matplotlib and IPython dirs) goes to the
test's temporary folder, and the notebook served is a temporary copy, so autosave cannot write outputs back.
The server runs in its own process group and is stopped by its PID (and that group) even when a check fails.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_translation_as_decisions.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_S = 60
RUN_ALL_S = 150  # chapter 01 takes ~15 s at the smoke preset on a 2-core CPU; generous for a loaded machine
WIDGET_UPDATE_S = 30

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {process.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer {url} within {SERVER_START_S} s; log:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then anything left in its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    try:  # kernels are the server's children, in the group it leads (start_new_session=True)
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def lab(request, tmp_path):
    """A JupyterLab server on localhost serving a copy of a chapter (chapter 01 unless the test is parametrised
    indirectly with another notebook's file name); yields (base url, token, notebook name)."""
    notebook = NOTEBOOK.parent / getattr(request, "param", NOTEBOOK.name)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's browser with: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="the PyPI package playwright is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(notebook, root / notebook.name)
    dirs = {name: tmp_path / name for name in ("config", "data", "runtime", "ipython", "mpl", "settings",
                                               "workspaces")}
    for d in dirs.values():
        d.mkdir()
    # no virtual scrolling: every cell stays in the DOM, so prompts and widgets can be found without scrolling
    tracker = dirs["settings"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)  # no "get notified about Jupyter news?" pop-up over the notebook
    (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]),
           "MPLCONFIGDIR": str(dirs["mpl"]), "RL_I2IT_SMOKE": "1", "RL_I2IT_RUNS": str(tmp_path / "runs")}
    port, token = _free_port(), "rl-i2it-browser-test"
    log = tmp_path / "jupyter.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={dirs['settings']}",
               f"--LabApp.workspaces_dir={dirs['workspaces']}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", process, log)
        yield base, token, notebook.name
    finally:
        _stop(process)


ALL_CELLS_RAN = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model) return false;
    const cells = Array.from(panel.content.model.cells);
    const code = cells.filter(c => c.type === 'code');
    return code.length > 0 && code.every(c => c.executionCount !== null && c.executionCount !== undefined)
        && panel.sessionContext.session && panel.sessionContext.session.kernel
        && panel.sessionContext.session.kernel.status === 'idle';
}"""

ERRORS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(e => e.textContent).filter(t => /Error|Traceback/.test(t)).concat(
    Array.from(document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
    .map(e => e.textContent))"""

PLAYER_STATE = """() => {
    const slider = document.querySelector('.widget-slider');
    const box = slider && slider.closest('.widget-vbox');
    const img = box && box.querySelector('.widget-output img');
    const readout = slider && slider.querySelector('.widget-readout');
    return {readout: readout ? readout.textContent.trim() : null, image: img ? img.getAttribute('src') : null};
}"""


def _run_all(page, base: str, token: str, name: str, run_all_s: float = RUN_ALL_S) -> None:
    """Open ``name`` in JupyterLab, run every cell and wait until all ran and the kernel is idle; no errors."""
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=SERVER_START_S * 1000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=SERVER_START_S * 1000)
    # start the run without awaiting its promise, so that run_all_s bounds it below
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(ALL_CELLS_RAN, timeout=run_all_s * 1000, polling=500)
    errors = page.evaluate(ERRORS)
    assert not errors, f"cells raised errors in JupyterLab: {errors[:3]}"


def test_chapter01_episode_player_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, name = lab
    started = time.monotonic()
    screenshot = tmp_path / "ch01_episode_player.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            _run_all(page, base, token, name)

            # the episode player renders as a live widget, not the static fallback alone
            slider = page.locator(".widget-slider").first
            slider.wait_for(state="attached", timeout=WIDGET_UPDATE_S * 1000)
            slider.scroll_into_view_if_needed()
            page.wait_for_function(f"() => ({PLAYER_STATE})().image !== null", timeout=WIDGET_UPDATE_S * 1000)
            before = page.evaluate(PLAYER_STATE)
            assert before["readout"] == "0", f"the player should start at step 0; readout {before['readout']!r}"

            handle = slider.locator(".noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                f"""() => {{ const s = ({PLAYER_STATE})();
                    return s.readout === '1' && s.image !== null && s.image !== {json.dumps(before['image'])}; }}""",
                timeout=WIDGET_UPDATE_S * 1000)
            after = page.evaluate(PLAYER_STATE)
            slider.locator("xpath=ancestor::*[contains(@class,'widget-vbox')][1]").screenshot(path=str(screenshot))
            page.screenshot(path=str(tmp_path / "ch01_page.png"))
        finally:
            browser.close()
    print(f"\nepisode player screenshot: {screenshot} (readout {before['readout']} -> {after['readout']}); "
          f"whole page: {tmp_path / 'ch01_page.png'}; {time.monotonic() - started:.1f} s in the browser")
    assert after["readout"] == "1"
    assert after["image"] != before["image"], "moving the slider did not redraw the player's figure"


#: per code cell: its first line, and how far its editor scrolls sideways (0 = every line fits)
OVERFLOW = """() => Array.from(document.querySelectorAll('.jp-CodeCell')).map(cell => {
    const scroller = cell.querySelector('.cm-scroller');
    const first = cell.querySelector('.cm-line');
    return {first: first ? first.textContent.slice(0, 60) : '',
            overflow: scroller ? scroller.scrollWidth - scroller.clientWidth : 0};
})"""

#: the text the plan explorer's cell printed (its stdout), line by line
EXPLORER_TEXT = """() => {
    const cell = Array.from(document.querySelectorAll('.jp-CodeCell')).find(c =>
        (c.querySelector('.jp-InputArea-editor') || {textContent: ''}).textContent.includes('plan_reach ='));
    return cell ? Array.from(cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'))
        .map(o => o.textContent).join('').split('\\n').filter(l => l.trim()) : null;
}"""


@pytest.mark.parametrize("lab", ["02_planner_and_actor.ipynb"], indirect=True)
def test_chapter02_reads_at_1400px(lab, tmp_path):
    """What a student sees of chapter 02 in JupyterLab at 1,400 px: no code cell scrolls sideways (the parameter
    cell's comments included), and the plan explorer prints a few lines (no raw provenance dict) saying how far the
    plan moves the field, beside the rendered explorer."""
    from playwright.sync_api import sync_playwright

    base, token, name = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _run_all(page, base, token, name, run_all_s=3 * RUN_ALL_S)
            overflowing = [c for c in page.evaluate(OVERFLOW) if c["overflow"] > 1]
            lines = page.evaluate(EXPLORER_TEXT)
            page.screenshot(path=str(tmp_path / "ch02_page.png"), full_page=True)
        finally:
            browser.close()
    print(f"\nchapter 02 at 1400 px: {tmp_path / 'ch02_page.png'}; explorer printed {lines}")
    assert not overflowing, f"code cells wider than the notebook at 1400 px: {overflowing}"
    assert lines is not None, "the plan explorer's cell was not found"
    assert 1 <= len(lines) <= 4, lines
    assert any("every plan component moved by ±3" in line for line in lines), lines
