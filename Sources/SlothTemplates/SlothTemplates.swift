// SlothTemplates
