"""The wsovvis pipeline definition (KFP v2), its compiled spec, local/remote runners, and the front doors on top of
the library: the installed ``wsovvis`` command (:mod:`.cli`) with its ``pipeline`` and ``demo`` commands.

Installed, this folder is the package ``wsovvis_pipelines`` and components/ its ``components`` (pyproject.toml's
package-dir); in a checkout both are top-level packages. Modules here import each other relatively, and the
components through :data:`.wsovvis_pipeline.COMPONENTS`, so both work under either name.
"""
