"""Tests of the build tooling: notebook discovery, book page generation, the site checker and the
nbval timing plugin."""

import json

import pytest

from helpers.questions import Question
from tools import book_pages, check_site, notebooks

pytest_plugins = ["pytester"]


def _question(**overrides):
    fields = dict(id="FIT-01", cluster="05 Fitting", difficulty="E", question_en="Why?", question_zh="为什么？",
                  answer="Because.", notebook="05_x", section="fit-x", answer_zh="因为。")
    return Question(**{**fields, **overrides})


def test_course_notebooks_are_numbered_and_sorted(tmp_path):
    for name in ["05_b.ipynb", "00_a.ipynb", "scratch.ipynb", "10a_c.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebooks.course_notebooks(tmp_path)] == ["00_a.ipynb", "05_b.ipynb", "10a_c.ipynb"]


def test_notebooks_cli_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        notebooks.main(["prepare-fast", "--out", "unused", "no_such_notebook"])
    assert "no notebook matches" in capsys.readouterr().err


def test_notebooks_cli_takes_names_after_the_options(tmp_path):
    notebooks.main(["prepare-fast", "--out", str(tmp_path), "00_start_here"])
    assert [p.name for p in tmp_path.glob("*.ipynb")] == ["00_start_here.ipynb"]


def test_question_index_groups_by_cluster_and_links_each_section():
    page = book_pages.question_index([_question(), _question(id="OV-01", cluster="00 Overview", section="ov-x")])
    assert page.index("## 00 Overview") < page.index("## 05 Fitting")  # course order, not the bank's order
    assert "{ref}`fit-x`" in page and "{ref}`ov-x`" in page
    assert "为什么？" in page and "因为。" in page
    assert page.count(":::{dropdown}") == 2
    assert "::::{div} mllab-q q-cluster-00 q-diff-" in page and ":name: q-ov-01" in page
    assert '<select id="filter-cluster">' in page and '<option value="05">05 Fitting</option>' in page
    assert 'id="show-answers"' in page


def test_data_page_lists_bundled_files_and_scikit_learn_sets(tmp_path):
    manifest = tmp_path / "MANIFEST.csv"
    manifest.write_text("file,sha256,rows,source,licence\n")
    empty = book_pages.data_page(manifest)
    assert "None yet" in empty and "`load_digits`" in empty and "CC BY 4.0" in empty
    manifest.write_text("file,sha256,rows,source,licence\nx.csv," + "a" * 64 + ",10,somewhere,CC0\n")
    assert "| `x.csv` | 10 | somewhere | CC0 | `aaaaaaaaaaaa…` |" in book_pages.data_page(manifest)


def test_sync_tree_touches_only_what_changed_and_keeps_the_build(tmp_path):
    import os

    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "notebooks").mkdir(parents=True)
    (source / "same.md").write_text("same")
    (source / "notebooks" / "changed.ipynb").write_text("new")
    (target / "notebooks").mkdir(parents=True)
    (target / "_build" / "html").mkdir(parents=True)
    (target / "same.md").write_text("same")
    os.utime(target / "same.md", (1, 1))
    (target / "notebooks" / "changed.ipynb").write_text("old")
    (target / "gone.md").write_text("removed from the book")
    (target / "old_dir").mkdir()
    (target / "old_dir" / "x.md").write_text("x")
    written = book_pages.sync_tree(source, target, keep={"_build"})
    assert written == [target / "notebooks" / "changed.ipynb"]
    assert (target / "same.md").stat().st_mtime == 1  # untouched: Sphinx will not re-read it
    assert (target / "notebooks" / "changed.ipynb").read_text() == "new"
    assert not (target / "gone.md").exists() and not (target / "old_dir").exists()
    assert (target / "_build" / "html").is_dir()


def test_deck_links_offer_every_file_as_a_download(tmp_path):
    text = book_pages.deck_links({"b.csv": tmp_path / "b.csv", "a.apkg": tmp_path / "a.apkg"})
    assert "## Flashcards" in text
    assert text.index("{download}`a.apkg <downloads/a.apkg>`") < text.index("{download}`b.csv <downloads/b.csv>`")


def test_count_lines_counts_each_kind_of_line_in_outputs(tmp_path):
    text = ["✔ a\n", "x\n", "✔ b\n", "○ not asserted: c\n", "≡ arithmetic: d\n", "≡ identity: e\n"]
    cells = [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": text}]},
             {"cell_type": "markdown", "source": "✔ not an output"}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert book_pages.count_lines(path) == 2
    assert book_pages.count_lines(path, "○") == 1
    assert book_pages.count_lines(path, "≡") == 2


def test_assemble_refuses_missing_executed_notebooks(tmp_path):
    with pytest.raises(SystemExit, match="not executed yet"):
        book_pages.assemble(tmp_path / "executed", tmp_path / "out", {})


def test_page_parser_collects_links_images_ids_and_main_text():
    page = check_site.parse(
        '<html><title>T</title><body><a href="a.html#x">a</a><main id="m"><p>hello world</p>'
        '<img src="i.png"></main></body></html>'
    )
    assert page.links == ["a.html#x"] and page.images == ["i.png"]
    assert page.ids == {"m"} and page.text_chars == len("hello world") and page.title == "T"


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text('<main><h1 id="top">Top</h1></main>')
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("index.html#top", None),
        ("https://example.org/x", None),
        ("img.png", None),
        ("missing.html", "broken link"),
        ("index.html#nowhere", "missing anchor"),
        ("empty.png", "empty image"),
        ("#top", None),
    ],
)
def test_check_target(site, target, problem):
    found = check_site._check_target(site, site / "index.html", "index.html", target, {})
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0]


def test_cards_of_reads_each_cards_visibility_and_open_answer():
    html = ('<div class="mllab-q q-cluster-05 q-diff-E" id="q-fit-01" data-shown="yes"><p>Q</p>'
            '<details open><summary>answer</summary><p>A<br>B</p></details></div>'
            '<div class="mllab-q q-cluster-04 q-diff-H" id="q-eval-01" data-shown="no">'
            '<details><summary>answer</summary></details></div><details open>not a card</details>')
    cards = check_site.cards_of(html)
    assert cards["q-fit-01"]["shown"] == "yes" and cards["q-fit-01"]["open"]
    assert cards["q-eval-01"]["shown"] == "no" and not cards["q-eval-01"]["open"]
    assert "q-cluster-04" in cards["q-eval-01"]["classes"]


def test_search_results_ignore_the_navigation():
    html = ('<nav><a href="notebooks/05_overfitting_underfitting.html">nav</a></nav>'
            '<div id="search-results"><h2>Results</h2><ul class="search"><li>'
            '<a href="notebooks/04a_evaluation_metrics.html">hit</a><br></li></ul></div><a href="after.html">x</a>')
    assert check_site.search_results(html) == ["notebooks/04a_evaluation_metrics.html"]


def test_check_reports_a_site_without_pages(tmp_path):
    assert check_site.check(tmp_path) == [f"no HTML pages under {tmp_path}"]


def _fake_notebook_suite(pytester, seconds_per_cell):
    """A tiny stand-in for nbval: a collector of '.ipynb' files whose items sleep."""
    pytester.makeconftest(
        f"""
        import time, pytest

        class Cell(pytest.Item):
            def runtest(self):
                time.sleep({seconds_per_cell})

        class Notebook(pytest.File):
            def collect(self):
                for i in range(3):
                    yield Cell.from_parent(self, name=f"cell {{i}}")

        def pytest_collect_file(file_path, parent):
            if file_path.suffix == ".ipynb":
                return Notebook.from_parent(parent, path=file_path)
        """
    )
    pytester.makefile(".ipynb", nb_one="{}")


def test_nbtiming_writes_durations_with_a_speed_index(pytester):
    _fake_notebook_suite(pytester, 0.01)
    result = pytester.runpytest("-p", "tools.nbtiming", "--nb-cap=5", "--nb-durations=out/d.json")
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "out" / "d.json").read_text())
    assert report["mode"] == "fast" and report["failed"] == []
    assert set(report["seconds"]) == {"nb_one"} and report["seconds"]["nb_one"] < 5
    assert report["speed_index_gflops"] > 0
    result.stdout.fnmatch_lines(["*notebook wall time*", "nb_one*", "speed index: * GFLOP/s*"])


def test_nbtiming_time_is_not_a_failure_below_the_cap(pytester):
    _fake_notebook_suite(pytester, 0.05)
    result = pytester.runpytest("-p", "tools.nbtiming", "--nb-durations=d.json")
    result.assert_outcomes(passed=3)


def test_nbtiming_fails_the_last_cell_of_a_runaway_notebook(pytester):
    _fake_notebook_suite(pytester, 0.05)
    result = pytester.runpytest("-p", "tools.nbtiming", "--nb-cap=0.1", "--nb-durations=d.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*nb_one took * s in fast mode, over the 0 s cap for a runaway notebook*"])
    assert json.loads((pytester.path / "d.json").read_text())["failed"] == ["nb_one"]


def test_nbtiming_collects_reports_from_xdist_workers(pytester):
    _fake_notebook_suite(pytester, 0.01)
    pytester.makefile(".ipynb", nb_two="{}")
    result = pytester.runpytest("-p", "tools.nbtiming", "-n", "2", "--dist", "loadfile",
                                "--nb-durations=d.json")
    result.assert_outcomes(passed=6)
    assert set(json.loads((pytester.path / "d.json").read_text())["seconds"]) == {"nb_one", "nb_two"}


@pytest.fixture
def stand_in_chromium(monkeypatch):
    """check_site without Chromium: pages are 'rendered' by parsing their file; the special checks pass."""
    rendered = []

    def render_page(chromium, base, site, page, screenshot_dir):
        rendered.append(page.name)
        return check_site.parse(page.read_text())

    monkeypatch.setattr(check_site, "find_chromium", lambda: "chromium")
    monkeypatch.setattr(check_site, "_render_page", render_page)
    for special in ("check_cjk_glyphs", "check_question_index", "check_search"):
        monkeypatch.setattr(check_site, special, lambda *args: [])
    return rendered


def test_check_renders_again_only_what_changed_since_the_last_clean_check(tmp_path, stand_in_chromium):
    site, cache = tmp_path / "site", tmp_path / "cache.json"
    (site / "_static").mkdir(parents=True)
    (site / "_static" / "theme.js").write_text("// v1")
    body = "<main>" + "text " * 60 + '<a href="b.html#sec">b</a></main>'
    (site / "a.html").write_text(body)
    (site / "b.html").write_text('<main id="sec">' + "text " * 60 + "</main>")
    assert check_site.check(site, cache=cache) == [] and sorted(stand_in_chromium) == ["a.html", "b.html"]

    stand_in_chromium.clear()
    assert check_site.check(site, cache=cache) == [] and stand_in_chromium == []  # nothing changed

    (site / "b.html").write_text('<main id="moved">' + "text " * 60 + "</main>")  # a's link now broken
    problems = check_site.check(site, cache=cache)
    assert stand_in_chromium == ["b.html"]  # a is not re-rendered, but its cached links are re-checked
    assert problems == ["a.html: link b.html#sec points at a missing anchor"]

    stand_in_chromium.clear()
    check_site.check(site, cache=cache)
    assert stand_in_chromium == ["a.html"]  # a failed, so it was not cached as clean

    stand_in_chromium.clear()
    (site / "_static" / "theme.js").write_text("// v2")
    check_site.check(site, cache=cache)
    assert sorted(stand_in_chromium) == ["a.html", "b.html"]  # a script every page loads changed

    stand_in_chromium.clear()
    cache.write_text("{not json")
    check_site.check(site, cache=cache)
    assert sorted(stand_in_chromium) == ["a.html", "b.html"]  # an unreadable cache is ignored
