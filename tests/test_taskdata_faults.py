"""Task data files that are damaged, oddly encoded or hostile: one line naming the file and line, never
a traceback, never silently wrong rows. Property-based over JSONL/CSV rows and encodings (hypothesis)."""

from __future__ import annotations

import csv
import io
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuning_bench.api.errors import UsageError
from tuning_bench.taskfiles import taskdata
from tuning_bench.taskfiles.taskfile import load_task_file

TASK = ("name: t\nkind: classification\ninstruction: Classify.\ninput_template: '{text}'\n"
        "target_template: '{label}'\nlabels: [a, b]\nmetrics: [accuracy]\ndata: {data}\n")
SPLIT_TASK = ("name: t\nkind: classification\ninstruction: Classify.\ninput_template: '{text}'\n"
              "target_template: '{label}'\nlabels: [a, b]\nmetrics: [accuracy]\n"
              "data: {train: train.jsonl, validation: validation.jsonl, test: test.jsonl}\n")


def _task(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    path = folder / "task.yaml"
    path.write_text(TASK.replace("{data}", name))
    return path


def _rows(n: int = 10) -> list[dict[str, str]]:
    return [{"text": f"example {i}", "label": "ab"[i % 2]} for i in range(n)]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _csv(rows) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["text", "label"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize(("name", "encode"), [("d.jsonl", _jsonl), ("d.csv", _csv)])
def test_bytes_that_are_not_utf8_are_one_line_naming_file_and_line(tmp_path, name, encode):
    data = encode(_rows()).replace(b"example 3", b"example \xff\xfe3")
    with pytest.raises(UsageError, match=rf"{name} line {5 if name.endswith('csv') else 4} is not UTF-8 text "
                                         r"\(byte 0xff\); save the file as UTF-8"):
        load_task_file(_task(tmp_path, name, data))


@pytest.mark.parametrize(("name", "encode"), [("d.jsonl", _jsonl), ("d.csv", _csv)])
def test_a_utf8_byte_order_mark_is_read_as_text(tmp_path, name, encode):
    task = load_task_file(_task(tmp_path, name, b"\xef\xbb\xbf" + encode(_rows())))
    texts = sorted(e["text"] for split in task.splits().values() for e in split)
    assert texts == sorted(r["text"] for r in _rows())


def test_a_csv_row_with_fewer_cells_than_the_header_is_an_error_naming_the_line(tmp_path):
    data = b"text,label\nfirst,a\nsecond\nthird,b\n"
    with pytest.raises(UsageError, match=r"d.csv line 3 has 1 cells, the header 2"):
        load_task_file(_task(tmp_path, "d.csv", data))


def test_a_csv_quote_left_open_does_not_merge_rows(tmp_path):
    data = b'text,label\nfirst,a\n"second,b\nthird,a\nfourth,b\n'
    with pytest.raises(UsageError, match=r"d.csv line 3 is not valid CSV \(unexpected end of data\); close the quote"):
        load_task_file(_task(tmp_path, "d.csv", data))


def test_a_quoted_field_spanning_lines_is_still_allowed_and_later_lines_are_numbered_right(tmp_path):
    data = b'text,label\n"two\nlines",a\n' + b"".join(b"row %d,b\n" % i for i in range(8)) + b"bad\n"
    with pytest.raises(UsageError, match=r"d.csv line 12 has 1 cells"):
        load_task_file(_task(tmp_path, "d.csv", data))


def test_examples_shared_between_splits_give_a_leakage_warning(tmp_path, capsys):
    rows = _rows(6)
    (tmp_path / "train.jsonl").write_bytes(_jsonl(rows[:4]))
    (tmp_path / "validation.jsonl").write_bytes(_jsonl(rows[4:5]))
    (tmp_path / "test.jsonl").write_bytes(_jsonl(rows[5:] + rows[:2]))
    (tmp_path / "task.yaml").write_text(SPLIT_TASK)
    load_task_file(tmp_path / "task.yaml")
    err = capsys.readouterr().err
    assert "warning:" in err and "examples shared between splits: 2 in train and test" in err
    (tmp_path / "test.jsonl").write_bytes(_jsonl(rows[5:]))
    load_task_file(tmp_path / "task.yaml")
    assert "shared" not in capsys.readouterr().err


def test_a_single_file_with_repeated_rows_warns_too(tmp_path, capsys):
    load_task_file(_task(tmp_path, "d.jsonl", _jsonl(_rows(10) * 2)))
    assert "examples shared between splits" in capsys.readouterr().err


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))  # 9**9 values
LAST = chr(97 + 8)


@pytest.mark.parametrize("key", ["labels", "instruction", "metrics", "fields"])
def test_a_yaml_alias_bomb_under_a_task_key_is_refused_quickly(tmp_path, key):
    text = TASK.replace("{data}", "d.jsonl")
    text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key}:"))
    (tmp_path / "task.yaml").write_text("x_anchors:\n" + "".join("  " + line + "\n" for line in BOMB.splitlines())
                                        + text + f"\n{key}: *{LAST}\n")
    (tmp_path / "d.jsonl").write_bytes(_jsonl(_rows()))
    with pytest.raises(UsageError, match="expands to more than 100,000 values"):
        load_task_file(tmp_path / "task.yaml")


def test_a_yaml_alias_bomb_in_a_suite_file_is_refused_quickly(tmp_path):
    from tuning_bench.run.settings import load_suite

    (tmp_path / "suite.yaml").write_text("options:\n" + "".join("  " + line + "\n" for line in BOMB.splitlines())
                                         + f"seeds: *{LAST}\n")
    with pytest.raises(UsageError, match="suite.yaml: expands to more than 100,000 values"):
        load_suite(tmp_path / "suite.yaml")


def test_messages_quote_large_values_briefly():
    from tuning_bench.api.bounded import brief_repr

    nested = [["x"] * 9] * 9
    for _ in range(6):
        nested = [nested] * 9  # shared references: cheap to hold, 9**8 values to print in full
    assert len(brief_repr(nested)) < 200
    assert brief_repr("a" * 1000).startswith("'aaa") and len(brief_repr("a" * 1000)) < 80


# --- property-based: any text in any cell reads back exactly, in both formats -----------------------

cell_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    min_size=1, max_size=40).filter(lambda t: t.strip() and t == t.strip() and "\r" not in t)
rows_strategy = st.lists(cell_text, min_size=10, max_size=16, unique=True).map(
    lambda texts: [{"text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, bom=st.booleans(), fmt=st.sampled_from(["jsonl", "csv"]))
def test_any_utf8_rows_read_back_exactly(tmp_path, rows, bom, fmt):
    data = (_jsonl if fmt == "jsonl" else _csv)(rows)
    task = load_task_file(_task(tmp_path, f"d.{fmt}", (b"\xef\xbb\xbf" if bom else b"") + data))
    read = sorted(e["text"] for split in task.splits().values() for e in split)
    assert read == sorted(r["text"] for r in rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, fmt=st.sampled_from(["jsonl", "csv"]), where=st.integers(0, 10_000),
       junk=st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80abc"]))
def test_any_invalid_utf8_names_its_line(tmp_path, rows, fmt, where, junk):
    data = (_jsonl if fmt == "jsonl" else _csv)(rows)
    lines = data.splitlines(keepends=True)
    index = where % len(lines)
    lines[index] = junk + lines[index]
    with pytest.raises(UsageError, match=rf"d.{fmt} line {index + 1} is not UTF-8 text"):
        load_task_file(_task(tmp_path, f"d.{fmt}", b"".join(lines)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, drop=st.integers(0, 10_000))
def test_any_short_csv_row_is_an_error_not_an_empty_target(tmp_path, rows, drop):
    short = drop % len(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    for index, row in enumerate(rows):
        writer.writerow([row["text"]] if index == short else [row["text"], row["label"]])
    with pytest.raises(UsageError, match="has 1 cells, the header 2"):
        load_task_file(_task(tmp_path, "d.csv", out.getvalue().encode()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.text(string.printable, max_size=20),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(string.ascii_letters, max_size=5), inner, max_size=4),
                          max_leaves=20),
       key=st.sampled_from(["labels", "instruction", "metrics", "fields", "split", "max_new_tokens", "higher_is_better"]))
def test_any_yaml_value_under_a_known_key_is_accepted_or_one_line(tmp_path, value, key):
    import yaml

    spec = yaml.safe_load(TASK.replace("{data}", "d.jsonl"))
    spec[key] = value
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "d.jsonl").write_bytes(_jsonl(_rows()))
    try:
        load_task_file(tmp_path / "task.yaml").splits()
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message and "task.yaml" in message and len(message) < 600


def test_warnings_from_data_go_through_one_hook(monkeypatch, tmp_path):
    said = []
    monkeypatch.setattr(taskdata, "warn", said.append)
    load_task_file(_task(tmp_path, "d.jsonl", _jsonl(_rows(10) * 2)))
    assert len(said) == 1 and "shared between splits" in said[0]
