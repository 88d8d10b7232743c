"""Helper scripts: the explorer's README screenshots and the browser/server plumbing they
share with the browser tests and the explorer benchmark."""
