"""Pulumi components for fleetprof: one ComponentResource per AWS layer.

The program in ``__main__.py`` loads one :class:`components.settings.Settings` from the
stack config and wires these components together; stacks differ by config only.
"""
