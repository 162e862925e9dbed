"""What a model is: names, the Modelfile, parameters (options), capabilities, create and show."""
