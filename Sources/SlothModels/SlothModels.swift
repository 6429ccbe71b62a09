// SlothModels
