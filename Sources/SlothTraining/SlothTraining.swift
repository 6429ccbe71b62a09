// SlothTraining
