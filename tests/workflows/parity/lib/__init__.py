"""The parity workflow's own helpers: knot ships them with the rules that import them."""
