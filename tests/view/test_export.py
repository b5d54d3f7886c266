import json
import math

import networkx as nx
import pytest

import gradmagic
from programs import SEED_3


def test_graphml_round_trip_keeps_nodes_edges_and_names(tmp_path):
    result = gradmagic.run(SEED_3)
    path = result.save(tmp_path / "seed.graphml")
    loaded = nx.read_graphml(path, force_multigraph=True)
    assert set(loaded.nodes) == set(result.graph.nodes)
    assert sorted((u, v) for u, v, _ in loaded.edges) == sorted((u, v) for u, v, _ in result.graph.edges)
    assert {n: d.get("name") for n, d in loaded.nodes(data=True)} == {
        n: d.get("name") for n, d in result.graph.nodes(data=True)}
    assert json.loads(loaded.nodes[result.graph.graph["roots"][0]]["shape"]) == []


def test_json_is_node_link_data(tmp_path):
    result = gradmagic.run(SEED_3)
    data = json.loads(result.save(tmp_path / "seed.json").read_text())
    graph = nx.node_link_graph(data, edges="edges")
    assert graph.number_of_edges() == result.graph.number_of_edges()
    x = next(d for _, d in graph.nodes(data=True) if d.get("name") == "x")
    assert x["grad"] == pytest.approx(17200.0)


def test_dot_text_lists_every_node_and_edge(tmp_path):
    result = gradmagic.run(SEED_3)
    text = result.save(tmp_path / "seed.dot").read_text()
    assert text.startswith("digraph") and text.count("->") == result.graph.number_of_edges()


def test_unknown_suffix_and_missing_folder_are_value_errors(tmp_path):
    result = gradmagic.run("x = torch.ones(1)")
    with pytest.raises(ValueError, match="unknown suffix"):
        result.save(tmp_path / "graph.bmp")
    with pytest.raises(ValueError, match="does not exist"):
        result.save(tmp_path / "missing" / "graph.json")


def test_json_is_strict_with_nan_inf_and_complex_values(tmp_path):
    result = gradmagic.run("x = torch.tensor([float('nan'), float('inf'), 1.0])\nz = torch.tensor(1-2j)\n"
                           "w = torch.tensor(float('-inf'))")

    def reject(token):
        raise ValueError(f"bare {token}")

    data = json.loads(result.save(tmp_path / "g.json").read_text(), parse_constant=reject)
    values = {n["name"]: n["value"] for n in data["nodes"] if n.get("name")}
    assert values == {"x": ["NaN", "Infinity", 1.0], "z": "1-2j", "w": "-Infinity"}
    assert complex(values["z"]) == 1 - 2j and float(values["w"]) == float("-inf")
    loaded = nx.read_graphml(result.save(tmp_path / "g.graphml"), force_multigraph=True)
    texts = {d.get("name"): d.get("value") for _, d in loaded.nodes(data=True)}
    assert texts["z"] == "1-2j" and json.loads(texts["x"], parse_constant=reject) == ["NaN", "Infinity", 1.0]


def test_json_of_non_finite_gradients_and_statistics_is_strict(tmp_path):
    # overflow then 0 * inf: values, gradients, flows and big-tensor statistics all hold NaN or inf
    result = gradmagic.run("x = torch.full((300,), 1e30, requires_grad=True)\ny = x * x\nz = (y * 0).sum()\n"
                           "z.backward()")

    def reject(token):
        raise ValueError(f"bare {token}")

    text = result.save(tmp_path / "g.json").read_text()
    data = json.loads(text, parse_constant=reject)
    named = {n["name"]: n for n in data["nodes"] if n.get("name")}
    assert named["x"]["stats"]["norm"] == "Infinity" and named["x"]["stats"]["min"] == pytest.approx(1e30)
    assert named["y"]["stats"]["min"] == "Infinity" and named["y"]["stats"]["inf"] == 300
    assert named["z"]["value"] == "NaN" and math.isnan(float(named["z"]["value"]))


@pytest.mark.parametrize("facecolor, alpha", [("none", 0), ("white", 255)])
def test_png_keeps_the_figures_own_background(tmp_path, facecolor, alpha):
    from PIL import Image

    result = gradmagic.run(SEED_3)
    result.figure.set_facecolor(facecolor)
    corner = Image.open(result.save(tmp_path / "seed.png")).convert("RGBA").getpixel((0, 0))
    assert corner[3] == alpha
    svg = result.save(tmp_path / "seed.svg").read_text()
    assert ('fill: #ffffff' in svg.split("</g>")[0]) == (alpha == 255)


# Mutants from issue 11 ---------------------------------------------------------------------------
# A GraphML export that dropped every edge attribute, and a JSON export that wrote nested dicts (pass_grads,
# pass_flows) as text, survived the whole suite: both files are read back here attribute by attribute.

def _as_json(value):
    """The value as strict JSON reads it back (tuples as lists, dict keys as text)."""
    return json.loads(json.dumps(value, allow_nan=False))


def _graphml_value(text_or_scalar, original):
    """A GraphML attribute as the original value: lists and dicts are stored as JSON text."""
    return json.loads(text_or_scalar) if isinstance(original, (list, dict)) else text_or_scalar


def test_graphml_keeps_every_node_and_edge_attribute(tmp_path):
    result = gradmagic.run(SEED_3)
    graph = result.graph
    loaded = nx.read_graphml(result.save(tmp_path / "seed.graphml"), force_multigraph=True)
    edges = {(u, v, str(k)): d for u, v, k, d in loaded.edges(keys=True, data=True)}
    assert len(edges) == graph.number_of_edges() > 10
    for u, v, k, d in graph.edges(keys=True, data=True):
        kept = {a: _graphml_value(edges[u, v, str(k)][a], b) for a, b in d.items() if b is not None}
        assert kept == _as_json({a: b for a, b in d.items() if b is not None}), (u, v, k)
        assert set(edges[u, v, str(k)]) == {a for a, b in d.items() if b is not None}
    for node, d in graph.nodes(data=True):
        kept = {a: _graphml_value(loaded.nodes[node][a], b) for a, b in d.items() if b is not None}
        assert kept == _as_json({a: b for a, b in d.items() if b is not None}), node
    assert next(d for *_, d in loaded.edges(data=True) if d.get("flow") == 1290.0)["pass_flows"] == '{"0": 1290.0}'


def test_json_keeps_nested_dicts_as_objects(tmp_path):
    result = gradmagic.run(SEED_3)
    graph = result.graph

    def reject(token):
        raise ValueError(f"bare {token}")

    data = json.loads(result.save(tmp_path / "seed.json").read_text(), parse_constant=reject)
    nodes = {n.pop("id"): n for n in data["nodes"]}
    assert nodes == {n: _as_json(d) for n, d in graph.nodes(data=True)}
    edges = {(e.pop("source"), e.pop("target"), e.pop("key")): e for e in data["edges"]}
    assert edges == {(u, v, k): _as_json(d) for u, v, k, d in graph.edges(keys=True, data=True)}
    x = nodes[graph.graph["bindings"]["x"]]
    assert x["pass_grads"] == {"0": 17200.0} and isinstance(edges["t0", "op4", "0"]["pass_flows"], dict)
    assert data["graph"]["bindings"] == graph.graph["bindings"] and data["graph"]["roots"] == graph.graph["roots"]


# Found by mutmut (scripts/mutation/run_mutmut.py export): the DOT text, the unknown-suffix message, and the
# figure bytes (no date or software stamp, text kept as text, PNG at twice the CSS size) were not pinned.

DOT_SOURCE = ("x = torch.tensor([1.0, 2.0], requires_grad=True)\nc = torch.tensor(3.0)\ny = (x * c).sum()\n"
              "f = y.detach() + 1\ny.backward()\n")
DOT_TEXT = """digraph autograd {
  rankdir=LR;
  "t0" [shape=box, label="x", role="leaf"];
  "t1" [shape=box, label="c", role="constant"];
  "t2" [shape=box, label="MulBackward0", role="intermediate"];
  "t3" [shape=box, label="y", role="output"];
  "t4" [shape=box, label="tensor", role="constant"];
  "t5" [shape=box, label="f", role="constant"];
  "op0" [shape=ellipse, label="tensor([1.0, 2.0], requires_grad=True)"];
  "op1" [shape=ellipse, label="tensor(3.0)"];
  "op2" [shape=ellipse, label="mul"];
  "op3" [shape=ellipse, label="sum"];
  "op4" [shape=ellipse, label="detach"];
  "op5" [shape=ellipse, label="add +1"];
  "t0" -> "op2" [label="0"];
  "t1" -> "op2" [label="1", style=dashed];
  "t2" -> "op3" [label="0"];
  "t3" -> "op4" [label="0", style=dashed];
  "t4" -> "op5" [label="0", style=dashed];
  "op0" -> "t0" [label="out0"];
  "op1" -> "t1" [label="out0"];
  "op2" -> "t2" [label="out0"];
  "op3" -> "t3" [label="out0"];
  "op4" -> "t4" [label="out0"];
  "op5" -> "t5" [label="out0"];
}
"""


def test_dot_text_names_every_node_with_its_label_role_and_cut_edges_dashed(tmp_path):
    result = gradmagic.run(DOT_SOURCE)
    assert result.save(tmp_path / "g.dot").read_text() == DOT_TEXT


def test_dot_quotes_backslashes_quotes_and_newlines_in_labels():
    from gradmagic.view.export import graph_bytes

    graph = gradmagic.run(DOT_SOURCE).graph.copy()
    graph.nodes["t0"]["label"] = 'say "hi"\\ \nthere'
    line = graph_bytes(graph, ".dot").decode().splitlines()[2]
    assert line == r'  "t0" [shape=box, label="say \"hi\"\\ \nthere", role="leaf"];'


def test_unknown_graph_suffix_names_the_suffixes_to_use():
    from gradmagic.view.export import graph_bytes

    with pytest.raises(ValueError) as raised:
        graph_bytes(gradmagic.run(SEED_3).graph, ".gml")
    assert str(raised.value) == "unknown graph suffix '.gml'; use one of .graphml .json .dot"


def test_plain_graph_writes_other_objects_as_their_text():
    import torch

    from gradmagic.view.export import plain_graph

    graph = nx.MultiDiGraph(device=torch.device("cpu"))
    graph.add_node("t0", dtype=torch.float32, pair=(1, 2))
    plain = plain_graph(graph)
    assert plain.graph == {"device": "cpu"} and plain.nodes["t0"] == {"dtype": "torch.float32", "pair": [1, 2]}


def test_figure_bytes_carry_no_date_or_software_stamp_and_repeat_exactly():
    from PIL import Image

    from gradmagic.view.export import display_size, figure_bytes

    figure = gradmagic.run(SEED_3).figure
    png, pdf, svg = (figure_bytes(figure, suffix) for suffix in (".png", ".pdf", ".svg"))
    assert (png, pdf, svg) == tuple(figure_bytes(figure, suffix) for suffix in (".PNG", ".pdf", ".svg"))
    assert b"Software" not in png and b"matplotlib" not in png.lower()
    assert b"CreationDate" not in pdf and "<dc:date>" not in svg.decode()
    assert "<text" in svg.decode()  # labels stay text (svg.fonttype none), not glyph paths
    width, height = display_size(figure)
    size = Image.open(__import__("io").BytesIO(png)).size
    assert size == pytest.approx((2 * width, 2 * height), abs=1)  # 2 px per CSS px, up to rounding


def test_png_is_compressed_at_the_fastest_zlib_level():
    """Level 1, rows unfiltered: a third of the time of matplotlib's writer (issue 13): the IDAT stream says which."""
    import struct

    from gradmagic.view.export import figure_bytes

    png = figure_bytes(gradmagic.run(SEED_3).figure, ".png")
    at = png.index(b"IDAT") + 4
    level = png[at + 1] >> 6  # zlib FLEVEL: 0 fastest (1), 1 fast (2-5), 2 default (6), 3 best (7-9)
    assert struct.unpack(">H", png[at:at + 2])[0] % 31 == 0 and level == 0


@pytest.mark.parametrize("rc", [{}, {"savefig.bbox": "tight", "savefig.dpi": 72}], ids=["defaults", "user's rc"])
def test_the_png_holds_the_pixels_and_density_matplotlibs_own_png_writer_gives(rc):
    import io

    import matplotlib
    import numpy as np
    from PIL import Image

    from gradmagic.view.export import figure_bytes, png_dpi

    figure = gradmagic.run(SEED_3).figure
    with matplotlib.rc_context(rc):
        ours = Image.open(io.BytesIO(figure_bytes(figure, ".png")))
    theirs = io.BytesIO()
    with matplotlib.rc_context({"text.hinting": "no_hinting"}):  # ours draws text unhinted: at 2x it adds nothing
        figure.savefig(theirs, format="png", dpi=png_dpi(figure), facecolor="auto", edgecolor="auto")
    theirs = Image.open(theirs)
    assert ours.mode == theirs.mode == "RGBA" and ours.size == theirs.size
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert ours.info["dpi"] == pytest.approx(theirs.info["dpi"])
    assert ours.info["dpi"] == pytest.approx((png_dpi(figure),) * 2, abs=0.01)


@pytest.mark.parametrize("size", [(4.705, 6.498), (3.0, 2.0), (7.77, 1.01), (2.345, 9.999), (0.5, 0.5)])
def test_the_png_is_as_many_pixels_as_matplotlib_draws_whatever_the_figure_size(size):
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    from gradmagic.view.export import figure_bytes, png_dpi

    figure = Figure(figsize=size)  # 4.705 in at 200 dpi: 941 px to matplotlib, 940.99... to a plain product
    figure.text(0.5, 0.5, "x")
    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", dpi=png_dpi(figure))
    assert Image.open(io.BytesIO(figure_bytes(figure, ".png"))).size == Image.open(drawn).size
