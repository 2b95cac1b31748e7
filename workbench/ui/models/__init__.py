"""One ``param.Parameterized`` model per page: the data it shows and the actions it offers."""
