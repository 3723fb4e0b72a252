"""Stop Smog heating calculator: for a resident's house, what replacing the coal stove with district heat,
network gas, a heat pump, electric heaters, a pellet boiler or LPG would cost, which grants apply and how much
CO2 and dust it saves. Data in ``cloud/smog/data``; formulas in ``cloud/smog/formulas.py``."""
