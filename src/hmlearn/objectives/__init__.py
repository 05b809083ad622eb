"""Training objectives beyond plain MCLoss: node weights, uncertainty, the rare-node objective."""
