"""Running a Flower deployment: TLS material, SuperNode authentication keys, and the
``flwr-stellar deploy`` process manager (``stack``)."""
