"""Stores: every SQL statement, Valkey key and engine call lives here."""
