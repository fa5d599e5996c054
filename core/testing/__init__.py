"""Tools for tests, the quickstart and plugin authors: generated image datasets (``images``,
``datasets``), the conformance kit (``conformance``) and the plugin scaffold (``scaffold``)."""
