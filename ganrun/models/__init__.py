"""Generator/discriminator pairs. Each network takes its shape from the dataset config and refuses shapes it cannot make."""
