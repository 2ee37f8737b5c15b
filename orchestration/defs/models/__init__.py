"""The models asset group: daily recommendation training, evaluation and publication."""
