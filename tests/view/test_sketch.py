"""The folded view as a Sketch (plain dicts): read as its DiGraph reads, and collapsed as its DiGraph collapses."""
import networkx as nx
import pytest

import gradmagic
from gradmagic.view.collapse import collapse_view
from gradmagic.view.folding import _folded_view
from gradmagic.view.sketch import Sketch, without
from programs import CONTROL_FLOW, LOOP_50, MODULE_STEP, SEED_3, STEP_WITH_MOMENTUM

def _dump(view) -> tuple:
    """Everything a drawing view holds, in its order."""
    return list(view.nodes(data=True)), list(view.edges(data=True)), dict(view.graph)


@pytest.fixture(scope="module", params=[SEED_3, LOOP_50, CONTROL_FLOW, MODULE_STEP, STEP_WITH_MOMENTUM])
def graph(request):
    return gradmagic.run(request.param).graph


def test_a_sketch_reads_as_its_digraph(graph):
    sketch = _folded_view(graph, show_all=False)
    digraph = sketch.to_digraph()
    assert _dump(sketch) == _dump(digraph) and len(sketch) == len(digraph) and list(sketch) == list(digraph)
    for node in digraph:
        assert list(sketch.predecessors(node)) == list(digraph.predecessors(node))
        assert list(sketch.successors(node)) == list(digraph.successors(node))
        assert list(sketch.in_edges(node, data=True)) == list(digraph.in_edges(node, data=True))
        assert sketch.in_degree(node) == digraph.in_degree(node)
    assert [(u, dict(s)) for u, s in sketch.adjacency()] == [(u, dict(s)) for u, s in digraph.adjacency()]


@pytest.mark.parametrize("options", [{}, {"depth": 0}, {"max_nodes": 5}, {"max_nodes": 10_000}])
def test_a_sketch_collapses_as_its_digraph_does(graph, options):
    sketch = _folded_view(graph, show_all=False)
    fast = collapse_view(sketch, total=len(graph), **options)
    slow = collapse_view(sketch.to_digraph(), total=len(graph), **options)
    assert _dump(fast) == _dump(slow)


def test_collapsing_a_sketch_leaves_the_graph_as_it_was(graph):
    before = [dict(d) for _, d in graph.nodes(data=True)]
    collapse_view(_folded_view(graph, show_all=False), total=len(graph))
    assert [dict(d) for _, d in graph.nodes(data=True)] == before


def test_leaving_nodes_out_keeps_the_views_order_whatever_is_left():
    view = nx.DiGraph()
    view.add_nodes_from([9, 3, 7, 1, 8, 2, 6, 0, 5, 4])  # a set of these iterates 0, 1, 2, ...
    view.add_edges_from([(9, 7), (9, 3), (3, 7), (1, 8)])
    dropped = {1, 8, 2, 6, 0, 5, 4}  # fewer than half left: networkx's subgraph lists them as a set
    kept = without(view, dropped)
    assert list(kept) == [9, 3, 7] and list(kept.edges) == [(9, 7), (9, 3), (3, 7)]
    sketch = Sketch({}, dict(view.nodes(data=True)), {(u, v): d for u, v, d in view.edges(data=True)})
    for left_out in (dropped, {2, 6, 0, 5, 4}):  # with edges, and isolated nodes only
        fast, slow = without(sketch, left_out), without(view, left_out)
        assert isinstance(fast, Sketch) and _dump(fast) == _dump(slow)
        assert [(list(fast.predecessors(n)), list(fast.successors(n))) for n in fast] == \
            [(list(slow.predecessors(n)), list(slow.successors(n))) for n in slow]
