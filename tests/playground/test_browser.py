"""The playground in a real browser (Debian's Chromium, driven by Playwright) against a real server."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from descentlab.optim import SGD, Adam
from descentlab.problems import SURFACES

VIEWPORT = {"width": 1500, "height": 1000}
SCREENSHOT = Path(__file__).parents[2] / "docs" / "playground.png"

# The visible text of the page: every text node that is rendered, the selected
# option of each menu, and whether it sits inside an element marked as not
# translated (names of optimizers and hyperparameters, numbers, formulas).
VISIBLE_TEXT = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    const text = node.textContent.trim();
    if (!text || el.closest("select, script, style") || !el.checkVisibility()) continue;
    out.push({ text, fixed: Boolean(el.closest("[data-notranslate]")), key: el.closest("[data-i18n]")?.dataset.i18n || null });
  }
  for (const select of document.querySelectorAll("select")) {
    if (!select.checkVisibility() || select.selectedIndex < 0) continue;
    out.push({ text: select.options[select.selectedIndex].text, fixed: select.hasAttribute("data-notranslate"),
               key: select.options[select.selectedIndex].dataset.i18n || null });
  }
  out.push({ text: document.title, fixed: false, key: "title" });
  return out;
}"""


def open_page(browser, url, locale="en-US"):
    context = browser.new_context(locale=locale, viewport=VIEWPORT)
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    ready(page)
    return page, errors, requests


def ready(page):
    page.wait_for_function(
        "document.body.dataset.status === 'ready' && window.playground.paths !== null", timeout=60_000
    )


def drawn(page):
    """What the contour canvas shows, pixel for pixel (as a PNG data URL)."""
    return page.evaluate("document.getElementById('contour').toDataURL()")


def step(page, times):
    for _ in range(times):
        page.click("#step")


def numbers(page, run, term):
    cell = page.locator(f'.card[data-run="{run}"] td[data-term="{term}"]')
    return [float(v) for v in cell.inner_text().split(", ")]


@pytest.fixture
def page(browser, server):
    page, errors, requests = open_page(browser, server)
    yield page
    assert not errors, errors
    # Offline: every request goes to the playground's own server.
    assert all(url.startswith(server) or url.startswith(("data:", "blob:")) for url in requests), requests
    page.context.close()


@pytest.mark.slow
def test_the_page_loads_without_console_errors_and_draws_paths(page, tmp_path):
    assert page.locator(".card").count() == 2
    before = drawn(page)
    step(page, 120)
    assert page.locator("#t").inner_text() == "120 / 200"
    assert drawn(page) != before
    # The screenshot in the README comes from here (written there when asked for).
    target = SCREENSHOT if os.environ.get("DESCENTLAB_UPDATE_SCREENSHOT") else tmp_path / "playground.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_surface_optimizer_slider_and_start_each_change_the_drawn_paths(page):
    step(page, 40)

    def changes(action):
        before, points = (
            drawn(page),
            page.evaluate("JSON.stringify(playground.paths.runs.map(r => r.points))"),
        )
        action()
        ready(page)
        assert drawn(page) != before
        assert page.evaluate("JSON.stringify(playground.paths.runs.map(r => r.points))") != points

    changes(lambda: page.select_option("#surface", "beale"))
    changes(lambda: (page.select_option("#add-choice", "rmsprop"), page.click("#add")))
    assert page.locator(".card").count() == 3
    slider = page.locator('fieldset.run input[data-control="lr"]').first
    changes(lambda: slider.fill("800"))
    assert page.evaluate("playground.state.runs[0].hyperparameters.lr") > 0.1
    changes(lambda: page.click("#contour", position={"x": 150, "y": 120}))
    assert page.evaluate("playground.paths.start") != list(SURFACES["beale"].start)


def test_stepping_shows_the_numbers_the_optimizer_computes_directly(page):
    step(page, 3)
    # The default view: SGD (lr 0.002, momentum 0.9) and Adam (lr 0.05) on Rosenbrock from its standard start.
    f = SURFACES["rosenbrock"].f
    for name, make, terms in (
        ("adam", lambda p: Adam([p], lr=0.05), ("exp_avg", "exp_avg_sq")),
        ("sgd", lambda p: SGD([p], lr=0.002, momentum=0.9), ("momentum_buffer",)),
    ):
        p = torch.tensor(SURFACES["rosenbrock"].start, dtype=torch.float64, requires_grad=True)
        opt = make(p)
        for _ in range(3):
            opt.zero_grad()
            f(p[0], p[1]).backward()
            before = p.detach().clone()
            opt.step()
        state = opt.state[p]
        expected = {
            "point": p.tolist(),
            "grad": p.grad.tolist(),
            "step": (p.detach() - before).tolist(),
            **{key: state[key].tolist() for key in terms},
        }
        if name == "adam":
            expected["m_hat"] = (state["exp_avg"] / (1 - 0.9**3)).tolist()
            expected["v_hat"] = (state["exp_avg_sq"] / (1 - 0.999**3)).tolist()
            expected["effective_lr"] = (
                0.05 / ((state["exp_avg_sq"] / (1 - 0.999**3)).sqrt() + 1e-8)
            ).tolist()
        for term, values in expected.items():
            # The page shows six significant digits.
            assert numbers(page, name, term) == pytest.approx(values, rel=5e-6), (name, term)
    formula = page.locator('.card[data-run="adam"] pre.formula').inner_text()
    assert "θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)" in formula


def visible(page):
    return page.evaluate(VISIBLE_TEXT)


@pytest.mark.slow
def test_the_language_switch_changes_every_visible_string(page):
    english = visible(page)
    page.select_option("#lang", "zh")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    ready(page)
    chinese = visible(page)
    translated = [item for item in chinese if not item["fixed"]]
    assert len(translated) >= 20
    untranslated = [item for item in translated if not re.search(r"[\u4e00-\u9fff]", item["text"])]
    assert not untranslated, untranslated
    # And back: the same English page as before.
    page.select_option("#lang", "en")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert sorted(i["text"] for i in visible(page) if not i["fixed"]) == sorted(
        i["text"] for i in english if not i["fixed"]
    )


def test_the_page_follows_the_browser_s_language(browser, server):
    page, errors, _ = open_page(browser, server, locale="zh-CN")
    assert page.locator("h1").inner_text() == "descentlab 演示场"
    assert page.locator("#lang").input_value() == "zh"
    assert not errors
    page.context.close()


@pytest.mark.slow
def test_the_address_restores_the_same_view(page, browser, server):
    page.select_option("#surface", "trap-noisy")
    ready(page)
    page.select_option("#regime", "mini-batch")
    page.fill("#batch-size", "10")
    page.select_option("#add-choice", "rmsprop")
    page.click("#add")
    page.locator('.run input[data-mistake="adam-no-sqrt"]').check()
    page.locator('fieldset.run input[data-control="momentum"]').first.fill("300")
    page.locator('select[data-run-regime="1"]').select_option("online")  # Adam online, beside the others
    ready(page)
    regimes = page.evaluate("playground.paths.runs.map(r => [r.label, r.regime])")
    assert regimes == [["sgd", None], ["adam", "online"], ["adam-no-sqrt", "online"], ["rmsprop", None]]
    page.click("#contour", position={"x": 500, "y": 100})
    ready(page)
    step(page, 25)
    view = (drawn(page), page.locator("#cards").inner_text(), page.locator("#t").inner_text())
    assert page.locator(".card").count() == 4  # sgd, adam, the mistaken rule beside it, rmsprop
    again, errors, _ = open_page(browser, page.url)
    assert (drawn(again), again.locator("#cards").inner_text(), again.locator("#t").inner_text()) == view
    assert again.locator("#regime").input_value() == "mini-batch"
    assert not errors
    again.context.close()


@pytest.mark.slow
def test_a_refused_formula_shows_its_message_in_the_reader_s_language(browser, server):
    page, errors, _ = open_page(browser, server)
    page.select_option("#lang", "zh")
    page.select_option("#surface", "custom")
    page.fill("#formula", "__import__('os')")
    page.click("#apply-formula")
    page.wait_for_selector("#message:not([hidden])")
    assert "未知的函数 __import__" in page.locator("#message").inner_text()
    # The browser logs the refused request itself; nothing else went wrong.
    assert all("status of 400" in e for e in errors), errors
    page.context.close()


@pytest.mark.slow
def test_the_view_exports_as_png_and_the_animation_as_gif(page, tmp_path):
    step(page, 10)
    with page.expect_download() as png:
        page.click("#png")
    image = Image.open(png.value.path())
    assert image.format == "PNG" and image.size == (640, 480)
    with page.expect_download(timeout=120_000) as gif:
        page.click("#gif")
    animation = Image.open(io.BytesIO(Path(gif.value.path()).read_bytes()))
    # One frame per update (200 updates and the start), every other one kept: at most 120 frames.
    assert animation.format == "GIF" and animation.n_frames == 101 and animation.size == (640, 480)
    assert page.locator("#t").inner_text() == "10 / 200"  # the view is back where it was


@pytest.mark.slow
def test_a_gif_over_the_request_budget_keeps_every_second_frame(page):
    # The budget a view of 2,000 updates exceeds (121 frames of ~300 kB), made small for the test.
    page.evaluate("playground.gifBudget = 20 * document.getElementById('contour').toDataURL().length")
    with page.expect_download(timeout=120_000) as gif:
        page.click("#gif")
    frames = Image.open(io.BytesIO(Path(gif.value.path()).read_bytes())).n_frames
    # Updates 0, 8, ..., 200 (or 0, 16, ..., 192 and the final 200): 101 halved until under it.
    assert frames in (26, 14), frames


@pytest.mark.slow
@pytest.mark.parametrize(
    "address",
    [
        '#s=rosenbrock&o=[{"optimizer":"nosuch","hyperparameters":{}}]',
        "#s=rosenbrock&t=abc",
        "#s=nowhere",
        "#s=rosenbrock&t=-5",
        "#s=rosenbrock&t=2.5",
        "#s=rosenbrock&n=2.5",
        "#s=rosenbrock&v=0",
    ],
    ids=[
        "unknown optimizer",
        "unreadable update",
        "unknown surface",
        "negative update",
        "fractional update",
        "fractional updates",
        "speed 0",
    ],
)
def test_an_address_naming_what_the_server_lacks_opens_the_default_view(browser, server, address):
    page, errors, _ = open_page(browser, server + address)
    assert page.locator(".card").count() == 2 and page.locator("#t").inner_text() == "0 / 200"
    assert not errors, errors
    page.context.close()


@pytest.mark.slow
def test_a_refused_setting_is_named_by_its_label_in_the_reader_s_language(browser, server):
    context = browser.new_context(locale="zh-CN", viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "#s=rosenbrock&n=5000&lang=zh")  # the server allows 2,000 updates
    page.wait_for_selector("#message:not([hidden])")
    assert page.locator("#message").inner_text() == "更新次数 必须是 1 到 2000 之间的整数。"
    assert all("status of 400" in e for e in errors), errors
    page.context.close()


@pytest.mark.slow
def test_the_start_moves_from_the_keyboard_and_every_input_has_a_name(page):
    before = page.evaluate("playground.paths.start")
    page.focus("#contour")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    ready(page)
    after = page.evaluate("playground.paths.start")
    assert after[0] > before[0] and after[1] > before[1]  # right and up, in the surface's coordinates
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button, canvas[tabindex]')]
            .filter((el) => el.checkVisibility() || el.id === 'x1')
            .filter((el) => !el.getAttribute('aria-label') && !(el.labels && [...el.labels].some(
                (l) => l.textContent.trim() && [...l.querySelectorAll('input, select')][0] === el))
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map((el) => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert unnamed == [], unnamed


@pytest.mark.slow
def test_a_narrow_screen_gets_one_column_without_sideways_scrolling(browser, server):
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, is_mobile=True, device_scale_factor=2
    )
    page = context.new_page()
    page.goto(server)
    ready(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, width
    plot = page.locator("#contour").bounding_box()
    assert plot["width"] <= 375 and plot["width"] > 300
    context.close()


@pytest.mark.slow
def test_play_animates_the_paths_and_pause_stops_them(page):
    before = drawn(page)
    page.click("#play")
    assert page.locator("#play").inner_text() == "Pause"
    page.wait_for_function("playground.state.t >= 10", timeout=30_000)
    page.click("#play")
    assert page.locator("#play").inner_text() == "Play"
    stopped = page.evaluate("playground.state.t")
    page.wait_for_timeout(300)
    assert page.evaluate("playground.state.t") == stopped and drawn(page) != before


@pytest.mark.slow
def test_a_typed_formula_is_drawn_and_descended_and_the_address_keeps_it(page, browser, server):
    before = drawn(page)
    page.select_option("#surface", "custom")
    page.fill("#formula", "x^2 + 10*y^2")
    for box, value in (("#x0", "-2"), ("#x1", "2"), ("#y0", "-1"), ("#y1", "1")):
        page.fill(box, value)
    page.click("#apply-formula")
    ready(page)
    assert page.evaluate("playground.surface.formula") == "x^2 + 10*y^2"
    step(page, 1)
    # From the centre of the bounds, (0, 0), the gradient of x^2 + 10 y^2 is zero; click a start instead.
    page.click("#contour", position={"x": 480, "y": 120})  # x = 1, y = 0.5 on this 640 x 480 canvas
    ready(page)
    x, y = page.evaluate("playground.paths.start")
    assert numbers(page, "sgd", "grad") == pytest.approx([2 * x, 20 * y], rel=5e-6)
    assert drawn(page) != before
    again, errors, _ = open_page(browser, page.url)
    assert again.evaluate("playground.surface.formula") == "x^2 + 10*y^2"
    assert drawn(again) == drawn(page) and not errors
    again.context.close()


RUN_COLOUR_NEAR = """([x, y]) => {
  // Whether a pixel of the first run's colour (#d62728) is within 3 pixels of the point (x, y).
  const canvas = document.getElementById('contour');
  const [[x0, x1], [y0, y1]] = playground.surface.bounds;
  const px = Math.round(((x - x0) / (x1 - x0)) * canvas.width);
  const py = Math.round((1 - (y - y0) / (y1 - y0)) * canvas.height);
  const data = canvas.getContext('2d').getImageData(px - 3, py - 3, 7, 7).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 180 && data[i + 1] < 90 && data[i + 2] < 90) return true;
  }
  return false;
}"""


@pytest.mark.slow
def test_a_path_whose_coordinates_overflow_ends_at_its_last_finite_point(browser, server):
    # lr 1e308 sends the first update past the largest float: the server sends its point as null.
    runs = '[{"optimizer":"sgd","hyperparameters":{"lr":1e308},"mistakes":[]}]'
    page, errors, _ = open_page(browser, server + f"#s=rosenbrock&n=20&t=1&lang=en&o={runs}")
    assert page.evaluate("playground.paths.runs[0].points") == [[-1.2, 1.0], [None, None]]
    # The dot is at the last finite point, the start; no line or dot towards the origin, where a
    # null read as 0 would put them.
    assert page.evaluate(RUN_COLOUR_NEAR, [-1.2, 1.0])
    assert not page.evaluate(RUN_COLOUR_NEAR, [0, 0])
    assert not page.evaluate(RUN_COLOUR_NEAR, [-0.6, 0.5])
    assert not errors, errors
    page.context.close()


@pytest.mark.slow
def test_a_typed_formula_runs_in_the_mini_batch_regime(browser, server):
    # A formula has no noise (one "sample"): the batch size, 20 as on the noisy surfaces, is not sent.
    formula = "x%5E2%20%2B%2010*y%5E2"
    address = f"#s=custom&f={formula}&b=[[-3,3],[-3,3]]&r=mini-batch&bs=20&lang=zh"
    page, errors, _ = open_page(browser, server + address)
    assert page.locator("#message").is_hidden()
    assert page.evaluate("playground.paths.regime") == "mini-batch"
    assert page.locator("#batch-size").is_disabled() and page.locator("#regime-note").is_visible()
    assert not errors, errors
    page.context.close()


@pytest.mark.slow
def test_a_shown_error_follows_the_language_switch(browser, server):
    page, errors, _ = open_page(browser, server + "#s=rosenbrock&lang=en")
    page.locator('fieldset.run input[data-control="momentum"]').first.fill("0")
    page.locator('fieldset.run input[type="checkbox"]').first.check()  # nesterov needs a momentum
    page.wait_for_selector("#message:not([hidden])")
    english = page.locator("#message").inner_text()
    assert not re.search(r"[\u4e00-\u9fff]", english), english
    page.select_option("#lang", "zh")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    chinese = page.locator("#message").inner_text()
    assert re.search(r"[\u4e00-\u9fff]", chinese) and chinese != english, chinese
    assert all("status of 400" in e for e in errors), errors
    page.context.close()


@pytest.mark.slow
def test_an_updates_value_over_the_limit_is_held_to_it(page):
    page.fill("#updates", "5000")  # the server allows 2,000
    page.press("#updates", "Tab")  # a number box reports its change when left
    ready(page)
    assert page.locator("#message").is_hidden()
    assert page.locator("#updates").input_value() == "2000"
    assert page.evaluate("playground.paths.updates") == 2000
    assert page.locator("#t").inner_text() == "0 / 2000" and "n=2000" in page.url


@pytest.mark.slow
def test_the_gif_ends_at_the_last_update(browser, server):
    # 250 updates: a frame every third update (at most 120 frames), which does not reach 250 itself.
    page, errors, _ = open_page(browser, server + "#s=rosenbrock&n=250&lang=en")
    with page.expect_request("**/api/gif") as sent, page.expect_download(timeout=120_000):
        page.click("#gif")
    frames = sent.value.post_data_json["frames"]
    assert len(frames) == 85  # updates 0, 3, ..., 249 and 250
    end, more_errors, _ = open_page(browser, server + "#s=rosenbrock&n=250&t=250&lang=en")
    assert end.locator("#t").inner_text() == "250 / 250"
    assert frames[-1] == drawn(end) and frames[-2] != frames[-1]
    assert not errors and not more_errors, errors + more_errors
    page.context.close()
    end.context.close()
