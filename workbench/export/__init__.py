"""Files for the tools teams already run (Prometheus, Grafana, containers), written from Workbench's state."""
