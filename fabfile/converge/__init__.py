"""converge: steps that plan from facts (the change to make, or nothing), the engine that
acts on the plan (a dry run does not act), and the templates of rendered files."""
