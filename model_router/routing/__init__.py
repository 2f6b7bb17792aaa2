"""The routing core: classify -> decide (policy) -> steps and the target (pipeline, targets) -> decision."""
