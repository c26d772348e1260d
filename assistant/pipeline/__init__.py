"""The pipeline: :class:`~assistant.pipeline.assistant.Assistant` assembled from its stages."""
