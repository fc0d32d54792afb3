"""marshmallow schemas for every input and output."""
