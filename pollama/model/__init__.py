"""What a model is: the Modelfile, parameters (options), capabilities, create and show."""
