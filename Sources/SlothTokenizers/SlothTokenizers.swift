// SlothTokenizers
