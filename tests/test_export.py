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
