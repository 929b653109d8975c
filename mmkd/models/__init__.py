"""Distillers: model wrappers that pair a student with a frozen teacher."""
