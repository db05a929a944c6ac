"""The GraphCast model: mesh, grid-mesh connectivity, graphs, the typed graph network and one step."""
