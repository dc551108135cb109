"""Local stand-ins for exchange APIs (started by the tests on 127.0.0.1)."""
