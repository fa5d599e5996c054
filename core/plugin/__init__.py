"""The plugin kernel: markers, the hook contract, the registry and discovery,
argument checks and errors. It knows nothing of models or training."""
