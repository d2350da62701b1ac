"""Wire records exchanged between the ServerApp and the nodes, and the reply digest."""
