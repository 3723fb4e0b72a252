"""Stop Smog heating calculator: for a resident's house, what replacing the coal stove with district heat,
network gas, a heat pump, electric heaters, a pellet boiler or LPG would cost, which grants apply and how much
CO2 and dust it saves. Data in ``cloud/smog/data``; formulas in ``cloud/smog/formulas.py``; see
docs/smog.md."""

from cloud.smog.addresses import AddressMatch, search_addresses
from cloud.smog.data import SmogData, load_smog_data, shipped_data
from cloud.smog.errors import SmogDataError, SmogImportError, SmogInputError
from cloud.smog.estimate import (
    EstimateRequest,
    EstimateResponse,
    HeatingOption,
    LoanRequest,
    estimate,
    estimate_for_site,
    parse_estimate_request,
)
from cloud.smog.importer import import_addresses, import_networks, import_sample, recompute_distances
from cloud.smog.sites import AddressSites, Site
from cloud.smog.tables import create_smog_tables, smog_metadata

__all__ = [
    "AddressMatch",
    "AddressSites",
    "EstimateRequest",
    "EstimateResponse",
    "HeatingOption",
    "LoanRequest",
    "Site",
    "SmogData",
    "SmogDataError",
    "SmogImportError",
    "SmogInputError",
    "create_smog_tables",
    "estimate",
    "estimate_for_site",
    "import_addresses",
    "import_networks",
    "import_sample",
    "load_smog_data",
    "parse_estimate_request",
    "recompute_distances",
    "search_addresses",
    "shipped_data",
    "smog_metadata",
]
