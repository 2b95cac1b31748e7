"""What people see: served dashboards (Panel + HoloViews on Bokeh) and notebook widgets (ipywidgets).

Every view is a thin client of the control plane through ``workbench.Client``: the dashboards' pages
follow one shared feed per process; the widgets use the notebook's own client.
"""
