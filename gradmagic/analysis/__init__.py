"""Analysis stage: reads the graph to explain gradients, find problems and check them numerically."""
