"""Tools for tests, the quickstart and plugin authors: generated image datasets."""
