"""The picture: a pyplot-free matplotlib Figure, readable labels, dashed no-gradient edges, no overlaps."""
import io
import itertools
import xml.etree.ElementTree as ET

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba
from matplotlib.text import Text
import networkx as nx
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.path import Path

import gradmagic
from gradmagic.view.folding import drawing_view, view_node
from gradmagic.view.layout import layered_layout
from gradmagic.view.render import draw_graph, render_figure
from programs import DETACH, MODULE_STEP, SEED_3


@pytest.fixture(scope="module")
def seed_graph():
    return gradmagic.run(SEED_3).graph


def _svg(figure, **rc) -> bytes:
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "test", "svg.fonttype": "none", **rc}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _node_texts(figure) -> list:
    """The text artists that label nodes (their gid is `node.line`)."""
    return [t for t in figure.axes[0].texts if t.get_gid() and not t.get_gid().startswith("flow:")]


def _flow_texts(figure) -> list:
    """The labels on edges (their gid is `flow:u->v`)."""
    return [t for t in figure.axes[0].texts if (t.get_gid() or "").startswith("flow:")]


def _edge(figure, u: str, v: str):
    """The arrow drawn for view edge u -> v."""
    return next(p for p in figure.axes[0].patches if p.get_gid() == f"edge:{u}->{v}")


def test_figure_is_not_registered_with_pyplot(seed_graph):
    before = plt.get_fignums()
    figure = render_figure(seed_graph)
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == before


def test_png_bytes(seed_graph):
    buffer = io.BytesIO()
    render_figure(seed_graph).savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_svg_parses_and_holds_the_captions(seed_graph):
    svg = _svg(render_figure(seed_graph, title="seed"))
    assert ET.fromstring(svg).tag.endswith("svg")
    text = svg.decode()
    for caption in ("x = 10.0 ∇ 17200", "a = 5.0 ∇ 1290", "y = 215.0 ∂ 430.0", "mul ×2", "reciprocal"):
        assert caption in text
    assert "seed" in text and "leaf" in text  # the title and the legend


def test_svg_is_deterministic(seed_graph):
    assert _svg(render_figure(seed_graph)) == _svg(render_figure(seed_graph))


def test_detached_edges_are_dashed_and_grey():
    figure = render_figure(gradmagic.run(DETACH).graph)
    arrows = [p for p in figure.axes[0].patches if p.get_linestyle() == "--"]
    assert arrows, "the edges out of detach carry no gradient and must be dashed"
    assert all(p.get_edgecolor()[0] == p.get_edgecolor()[1] == p.get_edgecolor()[2] for p in arrows)
    assert "no gradient" in _svg(figure).decode()


def test_all_edges_are_solid_without_detach(seed_graph):
    figure = render_figure(seed_graph)
    assert all(p.get_linestyle() == "-" for p in figure.axes[0].patches)


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
@pytest.mark.parametrize("show_all", [False, True])
def test_node_labels_do_not_overlap(seed_graph, rankdir, show_all):
    figure = render_figure(seed_graph, rankdir=rankdir, show_all=show_all)
    FigureCanvasAgg(figure).draw()
    boxes = [t.get_window_extent() for t in _node_texts(figure)]
    assert len(boxes) >= 15
    for one, other in itertools.combinations(boxes, 2):
        assert not one.overlaps(other), (one, other)


def test_labels_are_readable_and_inside_the_figure(seed_graph):
    figure = render_figure(seed_graph)
    FigureCanvasAgg(figure).draw()
    page = figure.bbox
    for text in _node_texts(figure):
        assert text.get_fontsize() >= 8
        box = text.get_window_extent()
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def test_rankdir_turns_the_picture(seed_graph):
    wide, tall = render_figure(seed_graph, rankdir="LR"), render_figure(seed_graph, rankdir="TB")
    assert wide.get_figwidth() > wide.get_figheight() and tall.get_figheight() > tall.get_figwidth()
    with pytest.raises(ValueError, match="rankdir"):
        render_figure(seed_graph, rankdir="BT")


def test_empty_and_single_node_graphs_draw():
    assert isinstance(draw_graph(nx.DiGraph(), {}), Figure)
    one = nx.DiGraph()
    one.add_node("t0", kind="tensor", label="x", role="leaf", value=1.0, grad=None)
    figure = draw_graph(one, layered_layout(one))
    assert [t.get_text() for t in _node_texts(figure)] == ["x = 1.0"]


def test_big_graph_is_capped_and_uses_collections():
    chain = nx.DiGraph()
    for i in range(1000):
        chain.add_node(i, kind="tensor", label=f"h{i}", role="named", value=float(i))
    chain.add_edges_from(((i, i + 1) for i in range(999)), differentiable=True, count=1)
    figure = draw_graph(chain, layered_layout(chain))
    assert max(figure.get_size_inches()) <= 40.5
    assert not figure.axes[0].patches  # one LineCollection for the edges, one PatchCollection for the nodes
    assert len(figure.axes[0].collections) == 2


def test_folded_values_appear_under_the_op(seed_graph):
    view = drawing_view(seed_graph)
    figure = draw_graph(view, layered_layout(view))
    folded = [t.get_text() for t in _node_texts(figure) if t.get_gid().endswith(".folded")]
    assert "20.0 ∂ 4300" in folded


LOOP = """
w = torch.tensor(0.9, requires_grad=True)
h = torch.tensor(1.0)
for t in range(40):
    h = torch.tanh(h * w + 0.1)
h.backward()
"""


@pytest.fixture(scope="module")
def loop_graph():
    return gradmagic.run(LOOP).graph


def test_hidden_note_is_printed_under_the_picture(loop_graph):
    figure = render_figure(loop_graph)
    FigureCanvasAgg(figure).draw()
    note = next(t for t in figure.texts if t.get_gid() == "hidden_note")
    assert note.get_text().startswith("Showing ") and "a loop of 40 iterations" in _svg(figure).decode()
    assert note.get_window_extent().y1 <= figure.axes[0].get_window_extent().y0


def test_no_note_when_nothing_is_hidden(seed_graph):
    assert not [t for t in render_figure(seed_graph).texts if t.get_gid() == "hidden_note"]


def test_a_note_explains_partial_gradients_in_captions_when_shown():
    view = nx.DiGraph()
    view.add_node("y", kind="tensor", label="y", role="named", value=2.0, pass_grads={0: 4.0}, grad=None)
    caption = next(t.get_text() for t in _node_texts(draw_graph(view, layered_layout(view))))
    note = [t.get_text() for t in draw_graph(view, layered_layout(view)).texts if t.get_gid() == "flow_note"]
    assert ("∂" in caption) == bool(note)  # whatever text.py writes, a ∂ on the picture is explained on it
    if note:
        assert "∂ the gradient that reached it in the last backward pass" in " ".join(note[0].split())


def test_a_note_explains_the_edge_labels(seed_graph, loop_graph):
    note = next(t.get_text() for t in render_figure(seed_graph).texts if t.get_gid() == "flow_note")
    assert note.startswith("Edge labels: the gradient that flowed back along the edge")
    assert "2\xa0×\xa0215.0: 2 edges drawn as one, 215.0 each" in note
    assert "Σ: the sum" in next(t.get_text() for t in render_figure(loop_graph).texts if t.get_gid() == "flow_note")


def test_blocks_have_thick_borders_and_a_legend_entry(loop_graph):
    figure = render_figure(loop_graph)
    widths = sorted(set(figure.axes[0].collections[0].get_linewidths()))
    assert widths == [1.0, 2.2]
    text = _svg(figure).decode()
    assert "loop ×39 more (line 5)" in text and "each: mul → add → tanh" in text and "folded loop" in text


def test_depth_and_max_nodes_reach_the_view(loop_graph):
    everything = render_figure(loop_graph, max_nodes=1000)
    assert "loop ×" not in _svg(everything).decode()
    with pytest.raises(ValueError, match="depth=-2"):
        render_figure(loop_graph, depth=-2)


def test_collapsed_labels_do_not_overlap(loop_graph):
    figure = render_figure(loop_graph, rankdir="LR")
    FigureCanvasAgg(figure).draw()
    boxes = [t.get_window_extent() for t in _node_texts(figure)]
    for one, other in itertools.combinations(boxes, 2):
        assert not one.overlaps(other), (one, other)


# ---- gradient flow on the edges and diagnostic marks -----------------------------------------------------

SEED_NO_BACKWARD = SEED_3.replace("z.backward()\n", "")


def test_seed_edges_are_labelled_with_the_gradient_that_flowed_along_them(seed_graph):
    texts = [t.get_text() for t in render_figure(seed_graph).findobj(Text)]
    assert texts.count("8600") == 2  # x -> mul ×2 and x -> mul: 2x·x gets dz/dx from both arguments
    assert texts.count("-1.55e-06") == 1  # x -> mul ×6, the path through b
    assert "2 × 215.0" in texts  # y*y: one drawn edge for both arguments, 215.0 flowing along each
    assert not [t for t in texts if "(×" in t]
    assert "∇ flow" in texts  # the legend says what the labels and widths are


@pytest.mark.parametrize("rankdir, least", [("TB", 14), ("LR", 10)])
def test_flow_labels_are_readable_and_clear_of_nodes_and_each_other(seed_graph, rankdir, least):
    figure = render_figure(seed_graph, rankdir=rankdir)
    FigureCanvasAgg(figure).draw()
    labels = [t.get_window_extent() for t in _flow_texts(figure)]
    nodes = [t.get_window_extent() for t in _node_texts(figure)]
    assert len(labels) >= least and all(t.get_fontsize() >= 6.5 for t in _flow_texts(figure))
    for one, other in itertools.combinations(labels, 2):
        assert not one.overlaps(other), (one, other)
    assert not any(label.overlaps(node) for label in labels for node in nodes)


def test_edges_are_as_wide_as_their_flow(seed_graph):
    figure = render_figure(seed_graph)
    x_mul2, x_mul6 = _edge(figure, "t1", "op2"), _edge(figure, "t1", "op6")  # 8600 and -1.55e-06
    assert x_mul6.get_linewidth() < x_mul2.get_linewidth() == 3.0
    assert x_mul6.get_linewidth() > 0.7  # tiny, but still drawn as a flow


def test_flows_false_draws_plain_edges(seed_graph):
    figure = render_figure(seed_graph, flows=False)
    assert [t.get_text() for t in _flow_texts(figure)] == ["2 edges"]  # the y*y count only
    assert "∇ flow" not in [t.get_text() for t in figure.findobj(Text)]
    assert {p.get_linewidth() for p in figure.axes[0].patches} == {1.0}


def test_a_program_without_backward_has_no_flows():
    figure = render_figure(gradmagic.run(SEED_NO_BACKWARD).graph)
    assert [t.get_text() for t in _flow_texts(figure)] == ["2 edges"]  # the y*y count only
    assert {p.get_linewidth() for p in figure.axes[0].patches} == {1.0}


def test_folded_loop_edges_sum_their_flows(loop_graph):
    view = drawing_view(loop_graph)
    block = next(n for n, d in view.nodes(data=True) if d["kind"] == "loop")
    w = next(n for n in view.predecessors(block) if view.nodes[n]["label"] == "w")
    label = next(t.get_text() for t in _flow_texts(render_figure(loop_graph)) if t.get_gid() == f"flow:{w}->{block}")
    flows = [d["flow"] for u, _, d in loop_graph.out_edges(w, data=True)]
    assert label.startswith("Σ ") and label.endswith(" (39 steps)")  # a sum over the 39 iterations folded
    assert float(label.split()[1]) == pytest.approx(sum(flows[1:]), rel=1e-2)


def _patch_of(figure, view, node):
    """The node's box in the one PatchCollection of a small picture."""
    return figure.axes[0].collections[0].get_edgecolors()[list(view).index(node)]


def test_marked_nodes_get_a_red_border_a_warning_sign_and_their_note(seed_graph):
    marks = {"nodes": {"t7"}, "notes": {"t7": "b.grad is None"}}  # t7 is b
    figure = render_figure(seed_graph, marks=marks)
    view = drawing_view(seed_graph)
    assert tuple(_patch_of(figure, view, "t7")) == to_rgba("#d62728")
    assert tuple(_patch_of(figure, view, "t5")) != to_rgba("#d62728")
    texts = {t.get_gid(): t.get_text() for t in _node_texts(figure)}
    assert texts["t7.tensor"].startswith("⚠ b = 300.0") and texts["t7.mark"] == "b.grad is None"
    assert "⚠ diagnostic" in _svg(figure).decode()
    assert "⚠ diagnostic" not in _svg(render_figure(seed_graph)).decode()


def test_a_mark_on_a_folded_tensor_lands_on_its_op(seed_graph):
    view = drawing_view(seed_graph)
    assert view_node(view, "t2") == "op2"  # 2*x, drawn as `mul ×2`
    for marks in ({"nodes": {"t2"}}, {"edges": {("op2", "t2", 0)}}):  # an edge inside the fold marks the fold
        figure = render_figure(seed_graph, marks=marks)
        assert tuple(_patch_of(figure, view, "op2")) == to_rgba("#d62728")
        assert next(t.get_text() for t in _node_texts(figure) if t.get_gid() == "op2.op") == "⚠ mul ×2"


def test_marked_edges_are_red_and_keep_their_dashes(seed_graph):
    figure = render_figure(seed_graph, marks={"edges": {("t1", "op6", "0")}})
    assert _edge(figure, "t1", "op6").get_edgecolor() == to_rgba("#d62728")
    assert _edge(figure, "t1", "op2").get_edgecolor() != to_rgba("#d62728")
    detached = gradmagic.run(DETACH).graph
    edge = next((u, v, k) for u, v, k, d in detached.edges(keys=True, data=True) if d.get("differentiable") is False)
    arrow = _edge(render_figure(detached, marks={"edges": {edge}}), view_node(drawing_view(detached), edge[0]),
                  view_node(drawing_view(detached), edge[1]))
    assert arrow.get_edgecolor() == to_rgba("#d62728") and arrow.get_linestyle() == "--"


def test_marks_on_unknown_nodes_are_value_errors(seed_graph):
    with pytest.raises(ValueError, match="'t999'"):
        render_figure(seed_graph, marks={"nodes": {"t999"}})
    with pytest.raises(ValueError, match="colour"):
        render_figure(seed_graph, marks={"colour": "red"})


def test_svg_with_flows_and_marks_is_deterministic(seed_graph, loop_graph):
    marks = {"nodes": {"t2", "t7"}, "edges": {("t1", "op6", "0")}, "notes": {"t7": "check b"}}
    assert _svg(render_figure(seed_graph, marks=marks)) == _svg(render_figure(seed_graph, marks=marks))
    assert _svg(render_figure(loop_graph)) == _svg(render_figure(loop_graph))


def test_complex_values_and_meta_tensors_label_their_nodes():
    complex_graph = gradmagic.run("z = torch.tensor(1+2j, requires_grad=True)\ny = (z * z.conj()).real\n"
                                  "y.backward()").graph
    text = _svg(render_figure(complex_graph, show_all=True)).decode()
    assert "z = 1+2j ∇ 2+4j" in text
    meta = gradmagic.run("x = torch.ones(3, device='meta', requires_grad=True)\ny = (x * 2).sum()").graph
    figure = render_figure(meta)
    assert "x [3] meta" in [t.get_text() for t in _node_texts(figure)]


# ---- pictures that read at notebook width ------------------------------------------------------------------

CNN_STEP = """
import torch.nn as nn
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
images, labels = torch.randn(2, 1, 8, 8), torch.tensor([1, 3])
loss = nn.functional.cross_entropy(model(images), labels)
opt.zero_grad()
loss.backward()
opt.step()
"""

RNN_1000 = LOOP.replace("range(40)", "range(1000)")

PROGRAMS = {"seed": SEED_3, "mlp": MODULE_STEP, "cnn": CNN_STEP, "rnn": RNN_1000}


@pytest.fixture(scope="module")
def graph_of():
    """name -> the graph of one of PROGRAMS, captured once."""
    graphs = {}

    def graph(name):
        if name not in graphs:
            graphs[name] = gradmagic.run(PROGRAMS[name]).graph
        return graphs[name]
    return graph


def _texts(figure) -> list:
    """Every text drawn in the figure (nodes, edge labels, legend, notes, title)."""
    return [t for t in figure.findobj(Text) if t.get_text() and t.get_visible()]


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_default_pictures_fit_the_notebook_with_readable_text(graph_of, name):
    figure = render_figure(graph_of(name))
    FigureCanvasAgg(figure).draw()
    assert figure.get_figwidth() <= 9.0  # 900 CSS px at 1:1
    assert min(t.get_fontsize() for t in _texts(figure)) >= 6.5  # 9 CSS px
    page = figure.bbox
    for text in _texts(figure):
        box = text.get_window_extent()
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, text.get_text()


def test_a_picture_too_wide_from_top_to_bottom_turns_left_to_right():
    wide = gradmagic.run("parts = [torch.tensor(float(i), requires_grad=True) for i in range(30)]\n"
                         "total = torch.stack(parts).sum()\ntotal.backward()").graph
    figure = render_figure(wide)
    assert figure.get_figwidth() <= 9.0 and figure.get_figheight() > figure.get_figwidth()
    upright = render_figure(wide, rankdir="TB")  # asked for: fewer details, then dots, saying so
    assert upright.get_figwidth() <= 9.0 and not _node_texts(upright)
    assert "Nodes drawn as dots" in next(t.get_text() for t in upright.texts if t.get_gid() == "hidden_note")


def test_show_all_draws_at_full_size_past_the_notebook_width(graph_of):
    figure = render_figure(graph_of("mlp"), show_all=True)
    assert figure.get_figwidth() > 9.0
    assert min(t.get_fontsize() for t in _texts(figure)) >= 8.0  # full size: nothing shrunk


def _polylines(path) -> list:
    """The curve and arrowhead of an arrow as polylines (a CLOSEPOLY's stray vertex would read as a line to 0, 0)."""
    return [Path(points) for points in path.to_polygons(closed_only=False)]


def _touches(polylines: list, box) -> bool:
    return any(line.intersects_bbox(box, filled=False) for line in polylines)


@pytest.mark.parametrize("name", ["seed", "mlp"])
def test_edge_labels_sit_clear_of_other_edges_and_of_nodes(graph_of, name):
    figure = render_figure(graph_of(name))
    FigureCanvasAgg(figure).draw()
    ax = figure.axes[0]
    arrows = {p.get_gid(): _polylines(p.get_transform().transform_path(p.get_path())) for p in ax.patches}
    nodes = [ax.transData.transform_path(p).get_extents() for p in ax.collections[0].get_paths()]
    labels = _flow_texts(figure)
    assert len(labels) >= 3
    for label in labels:
        box = label.get_window_extent().padded(-0.5)
        own = "edge:" + label.get_gid().removeprefix("flow:")
        assert _touches(arrows[own], box), label.get_text()  # it sits on its own edge
        crossed = [gid for gid, lines in arrows.items() if gid != own and _touches(lines, box)]
        assert not crossed, (label.get_text(), crossed)
        assert not any(box.overlaps(node) for node in nodes), label.get_text()


def test_background_is_transparent_and_text_sits_on_light_backings(seed_graph):
    figure = render_figure(seed_graph, title="seed")
    assert figure.patch.get_facecolor()[3] == 0
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    pixels = matplotlib.image.imread(buffer)
    assert pixels[0, 0, 3] == 0 and pixels[-1, -1, 3] == 0  # the notebook's background shows through
    backed = [t for t in _texts(figure) if t.get_bbox_patch() is not None]
    assert {t.get_gid() for t in backed} >= {"flow_note"} and len(backed) >= 15  # labels, notes and title
    assert all(to_rgba(t.get_bbox_patch().get_facecolor())[:3] == (1.0, 1.0, 1.0) for t in backed)
    frame = figure.legends[0].get_frame()
    assert frame.get_visible() and frame.get_facecolor()[:3] == (1.0, 1.0, 1.0)


HEADS = """
import torch.nn as nn
class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(4, 4) for _ in range(12))
    def forward(self, x):
        return sum(head(x) for head in self.heads)
model = Heads()
loss = model(torch.randn(2, 4)).sum()
loss.backward()
"""


def test_a_view_collapsed_to_fit_says_so():
    figure = render_figure(gradmagic.run(HEADS).graph, rankdir="TB")  # 12 heads side by side: too wide
    assert figure.get_figwidth() <= 9.0
    note = next(t.get_text() for t in figure.texts if t.get_gid() == "hidden_note").replace("\n", " ")
    assert "Collapsed from " in note and "to fit 9 inches (--all or --max-nodes N to expand)" in note


def _luminance(colour) -> float:
    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgba(colour)[:3]]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def _contrast(one, other) -> float:
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _over(colour, alpha: float, ground: str) -> tuple:
    """A colour of opacity `alpha` seen over the `ground` colour."""
    return tuple(alpha * c + (1 - alpha) * g for c, g in zip(to_rgba(colour)[:3], to_rgba(ground)[:3]))


def test_text_reads_on_light_and_dark_notebooks(seed_graph, loop_graph):
    from gradmagic.view.nodes import node_colours
    marks = {"nodes": {"t7"}, "notes": {"t7": "b.grad is None"}}
    for graph in (seed_graph, loop_graph):
        figure, view = render_figure(graph, marks=marks if graph is seed_graph else None), drawing_view(graph)
        for text in _node_texts(figure):
            fill = node_colours(view.nodes[text.get_gid().rsplit(".", 1)[0]])[0]
            assert _contrast(text.get_color(), fill) >= 4.5, text.get_text()
        for text in (t for t in _texts(figure) if t.get_bbox_patch() is not None):
            backing = text.get_bbox_patch()
            for ground in ("white", "#111111"):  # JupyterLab Light and Dark
                behind = _over(backing.get_facecolor(), backing.get_facecolor()[3], ground)
                assert _contrast(text.get_color(), behind) >= 4.5, (text.get_text(), ground)
