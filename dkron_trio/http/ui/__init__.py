"""The web UI served at ``/ui``: server-rendered pages over the API's own services.

Pages read the same store, run manager, scheduler and cluster view the API handlers use;
every write (create, edit, run, toggle, delete, cancel) is made by the page's script
calling the JSON API itself, so the UI adds no second path for changing state.
"""
