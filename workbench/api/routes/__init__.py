"""One router per resource; handlers are thin and call the control plane."""
