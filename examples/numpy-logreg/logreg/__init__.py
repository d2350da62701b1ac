"""A NumPy logistic-regression Flower App that uses flwr-stellar as its README says."""
