// SlothFormats
