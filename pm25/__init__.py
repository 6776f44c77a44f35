"""`pm25`: the command line, and the Prefect servers it starts or finds (flows live in flows/)."""
