"""A PyTorch MLP Flower App that uses flwr-stellar as its README says."""
