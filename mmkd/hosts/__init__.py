"""Host-library adapters: every call mmkd makes into a host library's private
API (a name with a leading underscore) lives in this package, one module per
host, each stating the host version its calls were checked against. An
upgrade of a host library means reading one file here.

This package sits below everything else in mmkd: it imports host libraries
only, never other mmkd modules.
"""
