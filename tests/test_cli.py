import json

import pytest


def test_help_and_version(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "summary" in out
    code, out, _ = cli("--version")
    assert code == 0 and out.startswith("squeezenet ")


def test_summary_json_table1(cli):
    code, out, _ = cli("summary", "squeezenet1_0", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["params"] == 1248424 and d["size_bytes"] == 4 * 1248424
    assert {"params", "macs", "size_bytes", "layers"} <= set(d)
    rows = {l["name"]: l for l in d["layers"]}
    assert rows["fire2"]["params"] == 11920 and rows["conv10"]["params"] == 513000
    assert rows["conv1"]["output"] == [96, 111, 111] and rows["fire9"]["output"] == [512, 13, 13]


@pytest.mark.parametrize("args,count", [
    (("squeezenet1_1",), 1235496), (("squeezenet1_0", "--bypass", "simple"), 1248424),
    (("squeezenet1_0", "--bypass", "complex"), 1589672)])
def test_summary_counts(cli, args, count):
    code, out, _ = cli("summary", *args, "--json")
    assert code == 0 and json.loads(out)["params"] == count


def test_summary_table(cli):
    code, out, _ = cli("summary", "squeezenet1_0")
    assert code == 0 and "1,248,424" in out and "fire9" in out and "55x55x128" in out


@pytest.mark.parametrize("argv,needle", [
    (("summary", "squeezenet1_2"), "did you mean"),
    (("summary", "squeezenet1_0", "--bypas", "simple"), "--bypass"),
    (("summary", "squeezenet1_0", "--bypass", "simpel"), "simple"),
    (("sumary",), "summary"),
    (("summary", "squeezenet1_0", "--input-size", "abc"), "must be an integer"),
])
def test_bad_cli_input(cli, argv, needle):
    code, out, err = cli(*argv)
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1, err
    assert needle in lines[0]
