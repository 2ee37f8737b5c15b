"""The read side: typed readers of the batch and speed views, their merge, and every answer the API gives."""
