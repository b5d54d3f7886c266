"""Recording stage: runs the code under the capture and keeps what it did to tensors, as a Trace."""
