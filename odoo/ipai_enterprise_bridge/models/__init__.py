from . import guarded_fields
from . import ipai_event_queue
from . import ipai_bus_digest
from . import hr_expense
from . import account_payment_register
from . import ipai_asset_booking
from . import project
