"""Several results -> one matrix: order, cells, duplicates, and unreadable files."""

from __future__ import annotations

from pathlib import Path

from greenpatch.reports.merge import Entry, load_matrix, merge, python_minor
from greenpatch.reports.model import write_result
from tests.reports import samples


def test_matrix_rows_are_suites_then_versions_newest_first_and_columns_are_pythons() -> None:
    old = samples.passing_result()
    old.version = "2.9.0"  # sorts before 2.32.3 as a version, after it as a string
    ref = samples.passing_result()
    ref.version = "main"  # a git ref: after every release
    matrix = merge(Entry(r) for r in [ref, *samples.matrix_results(), old])
    assert matrix.rows == [
        ("redis", "5.2.1"),
        ("requests", "2.32.3"),
        ("requests", "2.9.0"),
        ("requests", "main"),
    ]
    assert matrix.pythons == ["3.11", "3.12", "3.13"]
    cell = matrix.cell("redis", "5.2.1", "3.12")
    assert cell is not None and cell.result.python == "3.12.8"
    assert matrix.cell("requests", "2.32.3", "3.13") is None


def test_entries_follow_the_matrix_order_whatever_the_input_order() -> None:
    results = samples.matrix_results()
    forward = merge(Entry(r) for r in results)
    backward = merge(Entry(r) for r in reversed(results))
    assert [e.key for e in forward.entries] == [e.key for e in backward.entries]


def test_python_is_keyed_by_minor_version() -> None:
    assert python_minor("3.11.7") == "3.11"
    assert python_minor("3.13.0rc1") == "3.13"
    assert python_minor("pypy") == "pypy"
    newer = samples.passing_result(python="3.11.9")
    newer.finished_at = "2026-11-21T00:00:00+00:00"
    matrix = merge([Entry(samples.passing_result(), "a.json"), Entry(newer, "b.json")])
    assert len(matrix.entries) == 1


def test_same_cell_twice_keeps_the_newer_and_says_so() -> None:
    older, newer = samples.passing_result(), samples.passing_result()
    older.finished_at = "2026-11-19T08:00:00+00:00"
    newer.finished_at = "2026-11-20T09:00:00Z"  # "Z" as some tools write it
    for order in ([older, newer], [newer, older]):
        sources = {id(older): "ci/old.json", id(newer): "ci/new.json"}
        matrix = merge(Entry(r, sources[id(r)]) for r in order)
        assert [e.source for e in matrix.entries] == ["ci/new.json"]
        [note] = matrix.notes
        assert "requests 2.32.3 on Python 3.11 was given twice" in note
        assert "kept ci/new.json (finished 2026-11-20T09:00:00Z)" in note
        assert "dropped ci/old.json (finished 2026-11-19T08:00:00+00:00)" in note


def test_a_result_without_times_loses_to_one_with_times() -> None:
    timeless, timed = samples.passing_result(), samples.passing_result()
    timeless.started_at = timeless.finished_at = ""
    matrix = merge([Entry(timed, "timed.json"), Entry(timeless, "timeless.json")])
    assert matrix.entries[0].source == "timed.json"
    assert "at an unknown time" in matrix.notes[0]


def test_on_equal_times_the_later_argument_wins() -> None:
    matrix = merge(
        [Entry(samples.passing_result(), "1.json"), Entry(samples.passing_result(), "2.json")]
    )
    assert matrix.entries[0].source == "2.json"


def test_a_directory_stands_for_its_json_files_but_not_temp_files(tmp_path: Path) -> None:
    write_result(tmp_path / "requests-2.32.3-py3.11.json", samples.passing_result())
    write_result(tmp_path / "redis-5.2.1-py3.11.json", samples.regressing_result())
    (tmp_path / ".redis-5.2.1-py3.11.json.abc.tmp").write_text("{half")
    (tmp_path / ".redis-5.2.1-py3.11.work").mkdir()
    (tmp_path / "index.html").write_text("<html>")
    matrix = load_matrix([tmp_path])
    assert not matrix.problems
    assert sorted(e.result.suite for e in matrix.entries) == ["redis", "requests"]


def test_the_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = write_result(tmp_path / "r.json", samples.passing_result())
    matrix = load_matrix([tmp_path, path])
    assert len(matrix.entries) == 1 and not matrix.notes


def test_unreadable_files_are_problems_and_the_rest_is_still_merged(tmp_path: Path) -> None:
    good = write_result(tmp_path / "good.json", samples.passing_result())
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "suite": "x"')
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    matrix = load_matrix([good, broken, tmp_path / "missing.json", empty_dir])
    assert [e.source for e in matrix.entries] == [str(good)]
    messages = [str(problem) for problem in matrix.problems]
    assert messages[0].startswith(f"{empty_dir}: no result files")
    assert any(m.startswith(f"{broken}: not valid JSON") for m in messages)
    assert any(m.startswith(f"{tmp_path / 'missing.json'}: cannot read") for m in messages)
