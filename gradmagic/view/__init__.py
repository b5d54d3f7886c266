"""View stage: turns the graph into what is shown: the drawing view, the picture, tables and files."""
