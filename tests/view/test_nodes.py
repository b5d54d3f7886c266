"""Node text: every line of a caption drawn in its own row, boxes sized from all of them, tensor captions never cut."""
import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg

import gradmagic.view.nodes
from gradmagic.view.layout import layered_layout
from gradmagic.view.nodes import FONT, box_size, node_lines
from gradmagic.view.render import draw_graph

CAPTION = "in 16×4 → out 16×8\nweight 8×4 ‖∇‖ 0.436\nbias 8 ‖∇‖ 0.207"
SUMMARY = "[8×4] μ=-0.0243 σ=0.312 ∇‖0.436‖ (44 chars)"  # as long as text.py lets a caption line be


def _module_box() -> nx.DiGraph:
    view = nx.DiGraph()
    view.add_node("box", kind="cluster", label="Linear model.0", caption=CAPTION)
    view.add_node("x", kind="tensor", label="x", role="leaf", value=1.0, grad=None)
    view.add_edge("x", "box", count=1, differentiable=True)
    return view


def test_each_caption_line_is_its_own_line_of_the_node():
    lines = node_lines(_module_box().nodes["box"], detail=4)
    assert lines == [("Linear model.0", "block"), ("in 16×4 → out 16×8", "caption"),
                     ("weight 8×4 ‖∇‖ 0.436", "caption"), ("bias 8 ‖∇‖ 0.207", "caption")]
    assert node_lines(_module_box().nodes["box"], detail=1) == [("Linear model.0", "block")]


def test_wrapped_detail_breaks_long_lines_before_the_gradient(monkeypatch):
    monkeypatch.setattr(gradmagic.view.nodes, "tensor_caption", lambda data: "model.weight₁ = [-0.00529, 0.379] ∇ [-1.66, -3.31]")
    data = {"kind": "tensor", "label": "model.weight₁", "role": "leaf"}
    assert node_lines(data, 4) == [("model.weight₁ = [-0.00529, 0.379] ∇ [-1.66, -3.31]", "tensor")]
    assert node_lines(data, 2) == [("model.weight₁ = [-0.00529, 0.379]", "tensor"), ("∇ [-1.66, -3.31]", "tensor")]
    assert node_lines({"kind": "op", "label": "mse_loss(reduction=mean) ×2"}, 2) == \
        [("mse_loss(reduction=mean) ×2", "op")]  # op names stay whole


def test_the_box_grows_with_every_line():
    data = _module_box().nodes["box"]
    one, four = box_size(node_lines(data, 1), data), box_size(node_lines(data, 4), data)
    extra = 3 * FONT["caption"] * 1.3 / 72  # three caption lines, 1.3 line heights each
    assert abs(four[1] - one[1] - extra) < 1e-9


def test_every_line_is_drawn_inside_its_box():
    view = _module_box()
    figure = draw_graph(view, layered_layout(view, rankdir="TB"), rankdir="TB")
    FigureCanvasAgg(figure).draw()
    ax = figure.axes[0]
    texts = [t for t in ax.texts if (t.get_gid() or "").startswith("box.")]
    assert [t.get_text() for t in texts] == ["Linear model.0", *CAPTION.split("\n")]
    box = ax.transData.transform_path(ax.collections[0].get_paths()[0]).get_extents()
    tops = [t.get_window_extent() for t in texts]
    assert all(box.x0 <= t.x0 and t.x1 <= box.x1 and box.y0 <= t.y0 and t.y1 <= box.y1 for t in tops)
    assert all(upper.y0 >= lower.y1 - 0.5 for upper, lower in zip(tops, tops[1:]))  # one under the other


def test_tensor_caption_lines_are_never_cut(monkeypatch):
    monkeypatch.setattr(gradmagic.view.nodes, "tensor_caption", lambda data: f"model.0.weight 8×4\n{SUMMARY}")
    data = {"kind": "tensor", "label": "model.0.weight", "role": "leaf"}
    assert node_lines(data, 4) == [("model.0.weight 8×4", "tensor"), (SUMMARY, "summary")]
    assert node_lines(data, 3) == node_lines(data, 4)  # a tensor's summary holds its gradient: kept while it can be
    assert node_lines(data, 1) == [("model.0.weight", "tensor")]  # names only
    assert node_lines({"kind": "op", "label": "x" * 60}, 4)[0][0].endswith("…")  # other kinds still are
